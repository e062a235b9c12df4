"""`qwenbot doctor`: a typo in the settings is a warning row, and a hung model server is given up on
after doctor's own short wait, not the bot's read timeout."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.cli import rows

from bot.cli import main as cli
from bot.commands.doctor import CHECK_TIMEOUT


@pytest.fixture
def hung_server() -> Iterator[str]:
    """A model server that takes connections and never replies (a wedged process)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)  # connections wait in the backlog: never accepted, never answered
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1"


def test_a_misspelt_slack_variable_makes_the_settings_row_a_warning(
    env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / ".env").write_text("SLACK_BOT_TOKN=xoxb-not-read\n")
    assert cli(["doctor"]) == 0  # a warning is no failure
    output = capsys.readouterr().out
    checks = rows(output)
    assert checks["settings"] == "WARN" and checks["Slack"] == "SKIP", output
    [row] = [line for line in output.splitlines() if line[6:].startswith("settings")]
    assert "SLACK_BOT_TOKN is not a qwenbot setting and is ignored; did you mean SLACK_BOT_TOKEN?" in row
    assert "All checks passed (1 warning)." in output and "xoxb-not-read" not in output


@pytest.mark.slow
def test_doctor_gives_up_on_a_hung_model_server_after_its_own_short_wait(
    env: pytest.MonkeyPatch, hung_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    env.setenv("QWENBOT_LLM_BASE_URL", hung_server)
    env.setenv("QWENBOT_LLM_READ_TIMEOUT", "120")
    env.setenv("QWENBOT_LLM_TOTAL_TIMEOUT", "300")
    started = time.monotonic()
    assert cli(["doctor"]) == 1
    waited = time.monotonic() - started
    output = capsys.readouterr().out
    [row] = [line for line in output.splitlines() if line[6:].startswith("LLM endpoint")]
    assert row.startswith("FAIL") and f"within {CHECK_TIMEOUT:g}s" in row and "QWENBOT_LLM_READ_TIMEOUT" in row, row
    assert waited < 100, waited  # before: the full 120 s read timeout

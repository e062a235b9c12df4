"""Every command turns an operator's mistake into one line naming what to fix, never a traceback."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from support.fake_slack import BOT_TOKEN, SIGNING_SECRET, FakeSlack

from bot import cli


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No QWENBOT_/SLACK_ variables from the machine; returns the settings file for none."""
    for name in list(os.environ):
        if name.startswith(("QWENBOT_", "SLACK_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SIGNING_SECRET)
    monkeypatch.setenv("QWENBOT_STATE_DB", str(tmp_path / "state.sqlite3"))
    return Path(os.devnull)


def one_line(err: str) -> str:
    """The one line naming what to fix; only the line saying which settings file was read may precede it."""
    lines = [line for line in err.splitlines() if line.strip()]
    if lines and lines[0].startswith("qwenbot: settings: "):
        lines = lines[1:]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("QWENBOT_LOG_LEVEL", "LOUD", "QWENBOT_LOG_LEVEL"),
        ("QWENBOT_LLM_CONTEXT_WINDOW", "1024", "QWENBOT_LLM_CONTEXT_WINDOW"),
        ("QWENBOT_SYSTEM_PROMPT_FILE", "/nonexistent/prompt.txt", "QWENBOT_SYSTEM_PROMPT_FILE"),
        ("QWENBOT_CHANNEL_SCOPES_FILE", "/nonexistent/scopes.yml", "scopes"),
    ],
)
def test_run_reports_a_bad_setting_in_one_line(
    clean_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    value: str,
    named: str,
) -> None:
    monkeypatch.setenv(variable, value)
    assert cli.main(["--env-file", str(clean_env), "run", "--http"]) == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith("qwenbot run: bad setting:") and named in line


def test_ask_reports_a_bad_setting_the_same_way(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], corpus_index: Path
) -> None:
    monkeypatch.setenv("QWENBOT_INDEX_DIR", str(corpus_index))
    monkeypatch.setenv("QWENBOT_SYSTEM_PROMPT_FILE", "/nonexistent/prompt.txt")
    assert cli.main(["--env-file", str(clean_env), "ask", "how many vacation days?"]) == 2
    assert "QWENBOT_SYSTEM_PROMPT_FILE" in one_line(capsys.readouterr().err)


def test_run_on_a_port_in_use_says_so_in_one_line(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], corpus_index: Path
) -> None:
    monkeypatch.setenv("QWENBOT_INDEX_DIR", str(corpus_index))
    with FakeSlack() as slack, socket.socket() as taken:
        monkeypatch.setenv("QWENBOT_SLACK_API_URL", slack.api_url)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = cli.main(["--env-file", str(clean_env), "run", "--http", "--host", "127.0.0.1", "--port", str(port)])
    assert code == 1
    line = one_line(capsys.readouterr().err)
    assert line.startswith("qwenbot run:") and f"127.0.0.1:{port}" in line and "--port" in line


def test_run_with_a_refused_bot_token_says_so_in_one_line(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], corpus_index: Path
) -> None:
    monkeypatch.setenv("QWENBOT_INDEX_DIR", str(corpus_index))
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-revoked-token")
    with FakeSlack() as slack:
        monkeypatch.setenv("QWENBOT_SLACK_API_URL", slack.api_url)
        assert cli.main(["--env-file", str(clean_env), "run", "--http", "--port", "0"]) == 1
    line = one_line(capsys.readouterr().err)
    assert line.startswith("qwenbot run: SLACK_BOT_TOKEN was refused by Slack (invalid_auth): "), line
    assert "{" not in line and "xoxb-revoked-token" not in line

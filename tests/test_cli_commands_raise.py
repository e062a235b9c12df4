"""A command that cannot start says why in one line, printed by cli.main alone, with its exit status:
1 when what it reads is not there yet (no index, no bot state), 2 for a command line that cannot work."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bot import cli


@pytest.fixture
def nothing_yet(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No QWENBOT_ settings from the machine; no index and no bot state under tmp_path."""
    for name in list(os.environ):
        if name.startswith("QWENBOT_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("QWENBOT_INDEX_DIR", str(tmp_path / "index"))
    monkeypatch.setenv("QWENBOT_STATE_DB", str(tmp_path / "state.sqlite3"))
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str]]:
    code = cli.main(["--env-file", os.devnull, *argv])
    err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("qwenbot: settings: ")]
    return code, err


@pytest.mark.parametrize("argv", [("gaps",), ("questions", "--unanswered"), ("feedback", "export")])
def test_no_bot_state_yet_is_one_line(
    nothing_yet: Path, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...]
) -> None:
    code, err = run(capsys, *argv)
    assert code == 1
    assert err == [
        f"qwenbot {argv[0]}: no bot state at {nothing_yet / 'state.sqlite3'} (QWENBOT_STATE_DB); "
        "the bot writes it when it answers in Slack"
    ]


def test_ask_with_no_index_is_one_line(nothing_yet: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(capsys, "ask", "how many vacation days?")
    assert (code, err) == (1, [f"qwenbot ask: no index at {nothing_yet / 'index'}: run `qwenbot index` first"])


def test_eval_refuses_a_command_line_that_cannot_work(nothing_yet: Path, capsys: pytest.CaptureFixture[str]) -> None:
    questions = nothing_yet / "q.jsonl"
    questions.write_text('{"id": "1", "question": "Where do I park?", "sources": ["parking.md"]}\n')
    code, err = run(capsys, "eval", str(questions), "--docs", str(nothing_yet / "nowhere"))
    assert (code, err) == (2, [f"qwenbot eval: --docs {nothing_yet / 'nowhere'}: no such folder"])
    (nothing_yet / "docs").mkdir()
    code, err = run(
        capsys, "eval", str(questions), "--docs", str(nothing_yet / "docs"), "--store", str(nothing_yet / "index")
    )
    assert code == 2
    assert err == [
        f"qwenbot eval: --store {nothing_yet / 'index'} is the bot's index (QWENBOT_INDEX_DIR); "
        "give the eval its own folder"
    ]
    questions.write_text("not json\n")
    code, err = run(capsys, "eval", str(questions), "--docs", str(nothing_yet / "docs"))
    assert code == 2 and len(err) == 1 and err[0].startswith(f"qwenbot eval: {questions}:1: ")

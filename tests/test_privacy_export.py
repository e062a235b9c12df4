"""What the bot keeps on disk about people's questions: the state file (every DM question is in it) is
readable by its owner only, and `qwenbot feedback export` writes no Slack user id and no DM's id."""

from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot import cli
from bot.answer.records import Answer
from bot.logs import UserHasher
from bot.settings import load_settings
from bot.state import State

DM_QUESTION = "can I take sick leave for my chemotherapy without telling my manager?"


@pytest.fixture
def usual_umask() -> Iterator[None]:
    """The usual umask of a service account (022): what leaves a new file readable by everyone."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_state_file_and_its_wal_and_shm_are_readable_by_their_owner_only(tmp_path: Path, usual_umask: None) -> None:
    path = tmp_path / "state" / "state.sqlite3"
    state = State(path)
    try:
        state.questions.add_question(
            event_id=None, channel="D0ANNA", thread_ts="1.1", message_ts="1.1", user="U0", text="q"
        )
        files = [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]
        assert {p.name: oct(_mode(p)) for p in files} == {p.name: "0o600" for p in files}
    finally:
        state.close()


def test_an_existing_state_file_readable_by_others_is_named_in_a_warning(
    tmp_path: Path, usual_umask: None, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "state.sqlite3"
    State(path).close()
    path.chmod(0o644)  # written by an older version
    with caplog.at_level(logging.WARNING):
        State(path).close()
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert str(path) in warning and "chmod 600" in warning


def test_feedback_export_has_no_slack_user_or_dm_ids_and_is_private(
    tmp_path: Path, no_settings: pytest.MonkeyPatch, usual_umask: None
) -> None:
    db = tmp_path / "state.sqlite3"
    state = State(db)
    for channel, user, text in (("D0ANNA", "U0ANNA", DM_QUESTION), ("C0GENERAL", "U0BEN", "when is payday?")):
        qid = state.questions.add_question(
            event_id=None, channel=channel, thread_ts="1.1", message_ts="1.1", user=user, text=text
        )
        aid = state.questions.add_answer(qid, Answer("Ask your manager.", "generated"))
        state.feedback.record_reason(aid, user, "wrong")
    state.close()
    no_settings.setenv("QWENBOT_STATE_DB", str(db))
    no_settings.setenv("QWENBOT_LOG_USER_SALT", "salt-of-this-workspace")
    out = tmp_path / "export" / "down.jsonl"

    assert cli.main(["--env-file", os.devnull, "feedback", "export", "-o", str(out)]) == 0
    text = out.read_text()
    for raw_id in ("U0ANNA", "U0BEN", "D0ANNA"):
        assert raw_id not in text
    lines = {line["question"]: line for line in map(json.loads, text.splitlines())}
    hashed = UserHasher.from_config(load_settings(None, log_user_salt="salt-of-this-workspace").log_config())
    dm, channel = lines[DM_QUESTION], lines["when is payday?"]
    assert dm["channel"] is None and channel["channel"] == "C0GENERAL"  # a DM: no id
    assert dm["id"].endswith(hashed("U0ANNA")) and channel["id"].endswith(hashed("U0BEN"))  # as in the logs
    assert oct(_mode(out)) == "0o600"

"""The bot's SQLite state (dedupe across restarts, feedback) and its channel policy."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bot.answer.records import Answer, Source
from bot.slack.policy import PolicyError, load_channel_scopes
from bot.state import State
from retrieval.models import SearchFilter


def test_dedupe_claims_survive_a_restart_and_expire(tmp_path: Path) -> None:
    db = tmp_path / "state.sqlite3"
    state = State(db, dedupe_ttl_hours=1)
    assert state.claims.claim("event:Ev1")
    assert not state.claims.claim("event:Ev1")
    state.close()
    reopened = State(db, dedupe_ttl_hours=1)
    assert not reopened.claims.claim("event:Ev1")  # still a duplicate after the restart
    assert reopened.claims.claim("event:Ev1", now=time.time() + 3601)  # the TTL passed: a new delivery
    reopened.close()


def test_questions_answers_sources_and_feedback_are_stored(tmp_path: Path) -> None:
    state = State(tmp_path / "s.sqlite3")
    qid = state.questions.add_question(
        event_id="Ev1", channel="C1", thread_ts="1.1", message_ts="1.1", user="U1", text="how many days?"
    )
    assert state.questions.answered_thread("C1", "1.1")  # the bot's thread from the moment its answer starts
    assert not state.questions.answered_thread("C1", "2.2")
    answer = Answer(
        "25 days [1]",
        "generated",
        [
            Source(1, "Leave", "hr/leave.md", "Leave"),
            Source(2, "Leave", "hr/leave.md", "Leave > More"),
            Source(3, "FAQ", "faq.md", ""),
        ],
    )
    aid = state.questions.add_answer(qid, answer)
    assert state.questions.answered_thread("C1", "1.1") and state.questions.answer_exists(aid)
    state.feedback.record(aid, "U2", "down")
    state.feedback.record_reason(aid, "U2", "outdated")
    state.feedback.record(aid, "U3", "up")
    [down] = list(state.feedback.records("down"))
    assert (down.question, down.answer, down.reason, down.source_paths) == (
        "how many days?",
        "25 days [1]",
        "outdated",
        ["hr/leave.md", "faq.md"],
    )
    state.feedback.record(aid, "U2", "up")  # changing one's mind replaces the rating
    assert list(state.feedback.records("down")) == []
    assert state.questions.counts() == {"questions": 1, "answers": 1, "feedback": 2}


def test_channel_scopes_file(tmp_path: Path) -> None:
    path = tmp_path / "scopes.yml"
    path.write_text(
        "default:\n  tags: [public]\nchannels:\n  C0HR:\n    path_prefixes: [hr/]\n"
        "  C0ENG: {path_prefixes: [engineering/, it-security/], tags: [oncall]}\n"
    )
    scopes = load_channel_scopes(path)
    assert scopes.for_channel("C0HR") == SearchFilter(path_prefixes=("hr/",))
    assert scopes.for_channel("C0ENG") == SearchFilter(("engineering/", "it-security/"), ("oncall",))
    assert scopes.for_channel("C0OTHER") == SearchFilter(tags=("public",))
    assert load_channel_scopes(None).for_channel("C1") == SearchFilter()


@pytest.mark.parametrize(
    "content, message",
    [
        ("channels: [C1]", "'channels' must map"),
        ("channels:\n  C1: {paths: [hr/]}", "channels.C1: expected a mapping"),
        ("channels:\n  C1: {tags: [1]}", "channels.C1.tags: expected a list"),
        ("default: [", "not valid YAML"),
    ],
)
def test_bad_scopes_file_says_what_is_wrong(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "scopes.yml"
    path.write_text(content)
    with pytest.raises(PolicyError, match=message):
        load_channel_scopes(path)


def test_the_example_scopes_file_loads() -> None:
    example = Path(__file__).resolve().parent.parent / "deploy" / "channel_scopes.example.yml"
    scopes = load_channel_scopes(example)
    assert scopes.channels

"""The knowledge-gap loop: questions the docs missed or that were rated 👎, grouped with the real
embedding model; the digest posted on a schedule (a fake clock, no sleeping), "Mark as handled", and
`qwenbot gaps` / `qwenbot questions --unanswered`."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from support.fake_slack import block_action_payload, post_interaction
from support.safety import assert_no_mentions
from support.slack_bot import Bot

from bot import cli
from bot.answer.records import Answer
from bot.gaps import render as gap_render
from bot.gaps.digest import GapDigest
from bot.gaps.report import GapGroup, GapReport, NearDoc, parse_since
from bot.settings import load_settings
from bot.slack.policy import ChannelScopes
from bot.state import State
from bot.state.gaps import UnansweredQuestion
from bot.state.questions import QuestionPool

ADMINS = "C0ADMINS1"
PEOPLE_GROUP = "S0PEOPLEOP"

# 12 wordings of 3 questions, asked interleaved
WORDINGS = {
    "dog": [
        "Can I bring my dog to the office?",
        "Are dogs allowed at work?",
        "is it ok to bring my dog into the office",
        "dog-friendly office policy?",
    ],
    "gym": [
        "Do we get a gym membership discount?",
        "Is there a gym subsidy?",
        "company discount for gym memberships",
        "Does the company pay for the gym?",
    ],
    "parking": [
        "Where can I park my car?",
        "Is there employee parking?",
        "car parking at the office",
        "Where do employees park?",
    ],
}
DOWN_REASONS = {"Is there a gym subsidy?": "It quoted the expenses policy, which says nothing about gyms"}


def _ask_all(state: State) -> None:
    """Records the 12 questions as the bot would, in a public channel: not found in the docs, or
    answered and rated 👎."""
    state.questions.note_channel_type("C0GENERAL", "channel")
    for i in range(4):
        for topic, wordings in WORDINGS.items():
            text = wordings[i]
            qid = state.questions.add_question(
                event_id=None,
                channel="C0GENERAL",
                thread_ts=f"{i}.{topic}",
                message_ts=f"{i}.{topic}",
                user="U1",
                text=text,
            )
            if text in DOWN_REASONS:
                aid = state.questions.add_answer(qid, Answer("Expenses are reimbursed monthly [1].", "generated"))
                state.feedback.record(aid, "U1", "down")
                state.feedback.record_reason(aid, "U1", DOWN_REASONS[text])
            else:
                state.questions.add_answer(qid, Answer("I couldn't find this in the documentation.", "not_found"))
    answered = state.questions.add_question(
        event_id=None, channel="C0GENERAL", thread_ts="9.9", message_ts="9.9", user="U1", text="How many vacation days?"
    )
    state.questions.add_answer(answered, Answer("25 days [1].", "generated"))  # answered and not rated 👎: no gap


@pytest.fixture
def gaps_bot(make_bot: Callable[..., Bot], tmp_path: Path) -> Bot:
    scopes = tmp_path / "gap_scopes.yml"
    scopes.write_text(f"owners:\n  People Operations: {PEOPLE_GROUP}\n")
    return make_bot(
        gaps_channel=ADMINS, gaps_schedule="mon 09:00", gaps_timezone="Europe/Berlin", channel_scopes_file=scopes
    )


def _digest(bot: Bot) -> GapDigest:
    rt = bot.runtime
    return GapDigest(
        bot.settings.gaps_config(),
        rt.state,
        rt.client,
        rt.searcher.embedder.encode,
        lambda q, k, scope: rt.searcher.search(q, k=k, filter=scope),
        rt.policy.scopes,
    )


def _group_texts(blocks: list[dict[str, Any]]) -> list[str]:
    return [b["text"]["text"] for b in blocks[1:] if b["type"] == "section"]


def test_the_digest_groups_12_wordings_into_3_questions_on_schedule_then_one_is_handled(gaps_bot: Bot) -> None:
    bot = gaps_bot
    _ask_all(bot.runtime.state)
    digest = _digest(bot)
    now = time.time()  # the questions were recorded just now: the clock starts here, then jumps
    assert digest.tick(now) is None  # the first tick only sets the schedule
    due = digest.next_due
    assert due is not None
    local = datetime.fromtimestamp(due, ZoneInfo("Europe/Berlin"))
    assert (local.weekday(), local.hour, local.minute) == (0, 9, 0) and 0 < due - now <= 7 * 86400
    assert digest.tick(due - 1) is None and not bot.slack.calls_to("chat.postMessage")

    ts = digest.tick(due + 5)
    assert ts is not None and digest.tick(due + 6) is None  # once per scheduled time
    [post] = [c.args for c in bot.slack.calls_to("chat.postMessage") if c.args["channel"] == ADMINS]
    blocks = post["blocks"]
    assert "12 questions" in blocks[0]["text"]["text"] and "3 groups" in blocks[0]["text"]["text"]
    groups = _group_texts(blocks)
    assert len(groups) == 3
    for wordings in WORDINGS.values():
        [text] = [g for g in groups if wordings[0] in g]  # each topic in one group, with its count
        assert text.startswith("*4×*")
        assert sum(w in text for w in wordings) == 3  # the example and two other wordings
    [gym] = [g for g in groups if "gym" in g]
    assert "3 not in the docs · 1 rated 👎" in gym and "> It quoted the expenses policy" in gym
    assert all("Nearest docs: " in g for g in groups)
    buttons = [b for b in blocks if b["type"] == "actions"]
    assert [b["elements"][0]["text"]["text"] for b in buttons] == ["Mark as handled"] * 3
    tagged = [g for g in groups if f"<!subteam^{PEOPLE_GROUP}>" in g]
    assert all("People Operations <!subteam^" in g for g in tagged)  # only next to that owner's name
    assert_no_mentions(bot.slack, allowed_groups=(PEOPLE_GROUP,))

    # a doc owner marks the dog question handled: the button becomes a note, and it leaves the report
    [dog_button] = [b for b, g in zip(buttons, groups, strict=True) if "dog" in g]
    group_id = dog_button["elements"][0]["value"]
    payload = block_action_payload(
        gap_render.ACTION_GAP_HANDLED,
        group_id,
        user="U0OWNER",
        channel=ADMINS,
        message_ts=ts,
        thread_ts=None,
        response_url=bot.slack.response_url("handled"),
        block_id=dog_button["block_id"],
        blocks=blocks,
    )
    for _ in range(2):  # a second click changes nothing
        assert post_interaction(bot.url, payload).status == 200
        bot.wait_idle()
    [update] = bot.slack.calls_to("chat.update")
    note = [b for b in update.args["blocks"] if b.get("block_id") == f"gap:{group_id}"]
    assert note == [
        {
            "type": "context",
            "block_id": f"gap:{group_id}",
            "elements": [{"type": "mrkdwn", "text": ":white_check_mark: Marked as handled"}],
        }
    ]
    left = bot.runtime.state.gaps.unanswered(now - 3600, now + 3600, "public")
    assert len(left) == 8 and not any("dog" in q.text for q in left)
    assert_no_mentions(bot.slack, allowed_groups=(PEOPLE_GROUP,))


def test_doc_text_cannot_ping_anyone_in_the_digest() -> None:
    question = UnansweredQuestion(1, "<!here> where is <@U0BOSS>?", "C1", 0.0, True, False, ("ping <!channel>",))
    group = GapGroup(
        [question],
        [
            NearDoc("hr/a.md", "Title <!subteam^S0EVIL123>", "https://wiki.example/a", "<!everyone> People Operations"),
            NearDoc("hr/b.md", "B", None, "People Operations"),
        ],
    )
    message = gap_render.digest_message(GapReport(0.0, 86400.0, [group]), [1], {"people operations": PEOPLE_GROUP})
    text = json.dumps(message.blocks, ensure_ascii=False)
    assert text.count("<!subteam^") == 1 and f"People Operations <!subteam^{PEOPLE_GROUP}>" in text
    for ping in ("<!here", "<!channel", "<!everyone", "<@U0BOSS", "S0EVIL123>"):
        assert ping not in text


def test_qwenbot_gaps_and_questions_unanswered_print_the_same_report(
    corpus_index: Path, tmp_path: Path, no_settings: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    state = State(tmp_path / "state.sqlite3")
    _ask_all(state)
    state.close()
    no_settings.setenv("QWENBOT_STATE_DB", str(tmp_path / "state.sqlite3"))
    no_settings.setenv("QWENBOT_INDEX_DIR", str(corpus_index))
    env = ["--env-file", os.devnull]

    assert cli.main([*env, "gaps", "--since", "7d", "--json"]) == 0
    gaps = json.loads(capsys.readouterr().out)
    assert cli.main([*env, "questions", "--unanswered", "--json"]) == 0
    questions = json.loads(capsys.readouterr().out)
    assert gaps["groups"] == questions["groups"] and gaps["questions"] == 12
    assert sorted(g["count"] for g in gaps["groups"]) == [4, 4, 4]
    assert all(g["documents"] and g["documents"][0]["path"].endswith(".md") for g in gaps["groups"])

    assert cli.main([*env, "gaps"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("Unanswered questions from ") and "12 in 3 groups" in text and "nearest: " in text

    assert cli.main([*env, "questions"]) == 2  # without --unanswered: says what to add
    assert "--unanswered" in capsys.readouterr().err
    assert cli.main([*env, "gaps", "--since", "soon"]) == 2
    assert "--since 'soon'" in capsys.readouterr().err


def test_schedule_and_window_settings() -> None:
    assert parse_since("7d").days == 7 and parse_since("24h").total_seconds() == 86400
    settings = load_settings(None, gaps_channel=ADMINS, gaps_schedule="daily 07:30", gaps_timezone="Asia/Tokyo")
    digest = GapDigest(settings.gaps_config(), None, None, None, None, ChannelScopes())  # type: ignore[arg-type]
    base = datetime(2026, 3, 1, 12, 0, tzinfo=ZoneInfo("Asia/Tokyo")).timestamp()
    due = digest.due_after(base)
    assert datetime.fromtimestamp(due, ZoneInfo("Asia/Tokyo")).isoformat() == "2026-03-02T07:30:00+09:00"
    assert digest.period_start(due) == due - 86400
    with pytest.raises(Exception, match="QWENBOT_GAPS_SCHEDULE"):
        load_settings(None, gaps_schedule="someday")
    with pytest.raises(Exception, match="QWENBOT_GAPS_TIMEZONE"):
        load_settings(None, gaps_timezone="Mars/Olympus")


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def test_the_gap_and_assistant_state_works_on_both_backends(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    location = tmp_path / "state.sqlite3" if backend == "sqlite" else request.getfixturevalue("postgres_url")
    state = State(location)
    try:
        _ask_all(state)
        now = time.time()
        gaps = state.gaps.unanswered(now - 60, now + 60, "public")
        assert len(gaps) == 12 and [q.reasons for q in gaps if q.rated_down] == [tuple(DOWN_REASONS.values())]
        assert state.questions.popular_questions(now - 60, 4, QuestionPool("C0GENERAL"), 1) == [
            "How many vacation days?"
        ]
        assert state.questions.popular_questions(now - 60, 4, QuestionPool("C0OTHER"), 1) == []
        group = state.gaps.add_group([q.question_id for q in gaps[:3]])
        assert state.gaps.mark_handled(group, "U0OWNER") and not state.gaps.mark_handled(group, "U0OWNER")
        assert len(state.gaps.unanswered(now - 60, now + 60, "public")) == 9
        assert state.threads.context("D1", "1.1") is None
        state.threads.set_context("D1", "1.1", None)
        assert state.threads.context("D1", "1.1") == ""
        state.threads.set_context("D1", "1.1", "C0HRHELP")
        assert state.threads.context("D1", "1.1") == "C0HRHELP"
        asked = state.questions.question_for_answer(1)
        assert asked is not None and asked.text == WORDINGS["dog"][0] and asked.mode == "not_found"
    finally:
        state.close()

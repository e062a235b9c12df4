"""Slack's surfaces for AI apps against the fake Slack over HTTP: task steps streamed with the answer
(and the fallback where Slack refuses them), feedback_buttons, assistant threads (suggested prompts,
title, the viewed channel's scope) and "Ask an owner"."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support.clock import Clock
from support.fake_openai import answer
from support.fake_slack import (
    BOT_TOKEN,
    TEAM,
    Call,
    FakeSlack,
    Message,
    assistant_thread_event,
    block_action_payload,
    event_body,
    message_event,
    post_event,
    post_interaction,
)
from support.safety import assert_no_mentions
from support.slack_bot import GENERAL, HR, QUESTION, VACATION_ANSWER, Bot

from bot.answer.records import Answer, Source, Status
from bot.settings import load_settings
from bot.slack.client import make_client
from bot.slack.render.answer import answer_messages
from bot.slack.render.ask_owner import ACTION_ASK_OWNER, asked_owner_notice
from bot.slack.render.feedback import ACTION_FEEDBACK
from bot.slack.render.notices import apology
from bot.slack.render.tasks import outcome_step
from bot.slack.reply import ThreadReply

CHANNEL = "C0GENERAL"
USER = "U0ALICE"
ASK_HR = "C0ASKHR01"  # where "Ask an owner" posts for the hr/ scope
ASK_ALL = "C0ASKDOCS"  # ... and for every other scope
PEOPLE_GROUP = "S0PEOPLEOP"
NOT_IN_DOCS = "What is the airspeed velocity of an unladen swallow?"


def _reply(slack: FakeSlack, clock: Clock) -> tuple[ThreadReply, str]:
    settings = load_settings(None, slack_api_url=slack.api_url, slack_bot_token=BOT_TOKEN)
    ts = slack.add_message(CHANNEL, USER, "<@U0BOT> how many vacation days?")
    return ThreadReply(make_client(settings.slack_config()), CHANNEL, ts, ts, user=USER, team=TEAM, clock=clock), ts


FOUND = (
    Source(1, "Vacation policy", "hr/vacation.md", "", url="https://wiki.example/hr/vacation"),
    Source(2, "Leave <!here> rules", "hr/leave.md", "", url="javascript:alert(1)"),  # no safe url: not a source
)
TEXT = "You get **25 days** of paid vacation a year [1]."
ANSWER = Answer(TEXT, "generated", sources=[Source(1, "Vacation policy", "hr/vacation.md", "Vacation")])


def _stream(reply: ThreadReply, clock: Clock) -> str:
    reply.step(Status("searching"))
    reply.step(Status("reading", documents=2, passages=5, found=FOUND))
    reply.append("You get **25 days** ")  # the first words go out at once
    reply.append("of paid vacation a year [1].")  # held back: less than 128 characters within the second
    return reply.finish(answer_messages(ANSWER, answer_id=9, stale_days=365), ANSWER)


def test_task_steps_stream_with_the_answer_in_slacks_documented_shapes(slack: FakeSlack) -> None:
    clock = Clock()
    reply, ts = _reply(slack, clock)
    final_ts = _stream(reply, clock)

    assert slack.methods() == ["chat.startStream", "chat.appendStream", "chat.appendStream", "chat.appendStream"] + [
        "chat.stopStream"
    ]
    assert all(c.ok for c in slack.calls)
    [start] = slack.calls_to("chat.startStream")
    assert start.args == {
        "channel": CHANNEL,
        "thread_ts": ts,
        "recipient_user_id": USER,
        "recipient_team_id": TEAM,
        "task_display_mode": "timeline",
        "chunks": [
            {"type": "task_update", "id": "search", "title": "Searching the docs", "status": "in_progress"},
            {"type": "task_update", "id": "read", "title": "Reading", "status": "pending"},
            {"type": "task_update", "id": "write", "title": "Writing the answer", "status": "pending"},
        ],
    }
    reading, first_text, tail = (c.args for c in slack.calls_to("chat.appendStream"))
    assert reading == {
        "channel": CHANNEL,
        "ts": final_ts,
        "chunks": [
            {
                "type": "task_update",
                "id": "search",
                "title": "Searching the docs",
                "status": "complete",
                "details": "found 5 passages in 2 documents",
                "sources": [{"type": "url", "url": "https://wiki.example/hr/vacation", "text": "Vacation policy"}],
            },
            {
                "type": "task_update",
                "id": "read",
                "title": "Reading",
                "status": "in_progress",
                "details": "choosing the passages to answer from",
            },
        ],
    }
    assert first_text["chunks"] == [
        {"type": "task_update", "id": "read", "title": "Reading", "status": "complete"},
        {"type": "task_update", "id": "write", "title": "Writing the answer", "status": "in_progress"},
        {"type": "markdown_text", "text": "You get **25 days**"},
    ]
    assert tail["chunks"] == [{"type": "markdown_text", "text": " of paid vacation a year [1]."}]
    [stop] = slack.calls_to("chat.stopStream")
    assert stop.args["chunks"] == [
        {
            "type": "task_update",
            "id": "write",
            "title": "Writing the answer",
            "status": "complete",
            "details": "cites 1 document",
        }
    ]
    feedback = stop.args["blocks"][-1]
    assert feedback == {
        "type": "context_actions",
        "block_id": "feedback",
        "elements": [
            {
                "type": "feedback_buttons",
                "action_id": "feedback",
                "positive_button": {
                    "text": {"type": "plain_text", "text": "Helpful"},
                    "value": "up:9",
                    "accessibility_label": "This answer was helpful",
                },
                "negative_button": {
                    "text": {"type": "plain_text", "text": "Not helpful"},
                    "value": "down:9",
                    "accessibility_label": "This answer was not helpful",
                },
            }
        ],
    }
    [message] = slack.bot_messages(CHANNEL, ts)
    assert message.text == TEXT and not message.streaming
    assert {t["id"]: t["status"] for t in message.tasks.values()} == {
        "search": "complete",
        "read": "complete",
        "write": "complete",
    }
    assert not slack.calls_to("assistant.threads.setStatus")  # the steps are the sign of work


def test_where_slack_refuses_task_chunks_the_status_line_and_plain_streaming_carry_the_answer() -> None:
    with FakeSlack(refuse_task_chunks=True) as slack:
        clock = Clock()
        reply, ts = _reply(slack, clock)
        _stream(reply, clock)
        refused = slack.calls_to("chat.startStream", ok_only=False)[0]
        assert not refused.ok and "chunks" in refused.args
        assert [c.args["status"] for c in slack.calls_to("assistant.threads.setStatus")] == [
            "Searching the docs…",
            "Reading 2 documents…",
        ]
        ok = [c for c in slack.calls if c.ok]
        assert not any("chunks" in c.args for c in ok)  # no task chunk is tried again
        [start] = slack.calls_to("chat.startStream")
        assert start.args["markdown_text"] == "You get **25 days**" and "task_display_mode" not in start.args
        [message] = slack.bot_messages(CHANNEL, ts)
        assert message.text == TEXT and message.blocks[-1]["type"] == "context_actions" and not message.tasks


def test_task_chunks_refused_mid_stream_lose_nothing(slack: FakeSlack) -> None:
    clock = Clock()
    reply, ts = _reply(slack, clock)
    slack.fail("chat.appendStream", "invalid_chunks")  # the "reading" update
    _stream(reply, clock)
    assert [c.args["status"] for c in slack.calls_to("assistant.threads.setStatus")] == ["Reading 2 documents…"]
    [message] = slack.bot_messages(CHANNEL, ts)
    assert message.text == TEXT and message.blocks[-1]["block_id"] == "feedback"
    assert "chunks" not in slack.calls_to("chat.stopStream")[0].args


def test_a_failed_step_shows_error_with_a_short_reason(slack: FakeSlack) -> None:
    reply, ts = _reply(slack, Clock())
    reply.step(Status("searching"))
    reply.say(apology("abcd1234"), failure="something went wrong (error id abcd1234)")
    [stop] = slack.calls_to("chat.stopStream")
    assert stop.args["chunks"] == [
        {
            "type": "task_update",
            "id": "search",
            "title": "Searching the docs",
            "status": "error",
            "details": "something went wrong (error id abcd1234)",
        },
        {"type": "task_update", "id": "read", "title": "Reading", "status": "error", "details": "not reached"},
        {
            "type": "task_update",
            "id": "write",
            "title": "Writing the answer",
            "status": "error",
            "details": "not reached",
        },
    ]
    assert "abcd1234" in slack.calls_to("chat.postMessage")[0].args["text"]


def test_the_last_step_names_how_the_answer_ended() -> None:
    assert outcome_step(Answer("…", "not_found"))[0] == "Not in the docs"
    extractive = Answer("> quoted", "extractive", model_error="ConnectError: http://10.0.0.7:8000 refused")
    title, details = outcome_step(extractive)
    assert title == "Model unavailable: quoting the docs" and "10.0.0.7" not in details


# --- the bot end to end ----------------------------------------------------------------------------


@pytest.fixture
def native_bot(make_bot: Callable[..., Bot], tmp_path: Path) -> Callable[..., Bot]:
    scopes = tmp_path / "native_scopes.yml"
    scopes.write_text(
        f"""
default:
  ask_channel: {ASK_ALL}
  suggested_prompts: ["How many vacation days do I get?", "How do I set up the VPN?"]
channels:
  {HR}:
    path_prefixes: [hr/]
    ask_channel: {ASK_HR}
    suggested_prompts: ["How do I report sick leave?"]
owners:
  People Operations: {PEOPLE_GROUP}
"""
    )

    def build(**overrides: Any) -> Bot:
        return make_bot(channel_scopes_file=scopes, **overrides)

    return build


def _blocks(args: dict[str, Any]) -> list[dict[str, Any]]:
    blocks = args.get("blocks") or []
    return json.loads(blocks) if isinstance(blocks, str) else list(blocks)


def _answer_id(message: Message) -> int:
    return int(message.blocks[-1]["elements"][0]["positive_button"]["value"].split(":")[1])


def _click(bot: Bot, action_id: str, value: str, message: Message, user: str, **kw: Any) -> None:
    payload = block_action_payload(
        action_id,
        value,
        user=user,
        channel=message.channel,
        message_ts=message.ts,
        thread_ts=message.thread_ts,
        response_url=bot.slack.response_url("action"),
        **kw,
    )
    assert post_interaction(bot.url, payload).status == 200
    bot.wait_idle()


def test_an_answer_streams_its_steps_and_ends_with_feedback_buttons(native_bot: Callable[..., Bot]) -> None:
    bot = native_bot()
    bot.llm.push(answer(VACATION_ANSWER))
    ts, _ = bot.ask(QUESTION)
    [message] = bot.answer_in(GENERAL, ts)
    calls = bot.thread_calls(GENERAL, ts)
    assert calls[0] == "chat.startStream" and calls[-1] == "chat.stopStream"
    assert set(calls) == {"chat.startStream", "chat.appendStream", "chat.stopStream"}  # no status line
    tasks = message.tasks
    assert re.fullmatch(r"found \d+ passages? in \d+ documents?", tasks["search"]["details"])
    assert any(s["url"].startswith("https://wiki.northwind.example/") for s in tasks["search"]["sources"])
    assert (tasks["write"]["title"], tasks["write"]["status"]) == ("Writing the answer", "complete")
    assert message.text == "".join(VACATION_ANSWER)
    assert [b["type"] for b in message.blocks] == ["markdown", "section", "context_actions"]
    assert_no_mentions(bot.slack)


def test_native_feedback_is_stored_and_thumbs_down_opens_the_reason_modal(native_bot: Callable[..., Bot]) -> None:
    bot = native_bot()
    bot.llm.push(answer(VACATION_ANSWER))
    ts, _ = bot.ask(QUESTION)
    [message] = bot.answer_in(GENERAL, ts)
    answer_id = _answer_id(message)
    kw = {"action_type": "feedback_buttons"}
    _click(bot, ACTION_FEEDBACK, f"up:{answer_id}", message, "U0BOB", **kw)
    _click(bot, ACTION_FEEDBACK, f"down:{answer_id}", message, "U0CAROL", **kw)
    ratings = {(r.user, r.rating) for r in bot.runtime.state.feedback.records()}
    assert ratings == {("U0BOB", "up"), ("U0CAROL", "down")}
    [opened] = bot.slack.calls_to("views.open")
    view = opened.args["view"]
    assert (json.loads(view) if isinstance(view, str) else view)["private_metadata"] == str(answer_id)
    # 👎 also offers to ask an owner (the default scope has an owners' channel)
    [offer] = [c.args for c in bot.slack.calls_to("chat.postEphemeral") if c.args.get("user") == "U0CAROL"]
    assert [b["block_id"] for b in _blocks(offer)] == ["ask_owner"]
    assert_no_mentions(bot.slack)


def test_ask_an_owner_posts_the_question_to_the_scopes_channel_once(native_bot: Callable[..., Bot]) -> None:
    bot = native_bot()
    ts, _ = bot.ask(NOT_IN_DOCS, channel=HR)
    [message] = bot.answer_in(HR, ts)
    assert message.tasks["write"]["title"] == "Not in the docs"
    [ask] = [b for b in message.blocks if b.get("block_id") == "ask_owner"]
    value = ask["elements"][0]["value"]
    _click(bot, ACTION_ASK_OWNER, value, message, "U0ALICE", block_id="ask_owner")
    _click(bot, ACTION_ASK_OWNER, value, message, "U0ALICE", block_id="ask_owner")  # twice: posted once
    [posted] = [c.args for c in bot.slack.calls_to("chat.postMessage") if c.args["channel"] == ASK_HR]
    assert not [c for c in bot.slack.calls_to("chat.postMessage") if c.args["channel"] == ASK_ALL]
    text = _blocks(posted)[0]["text"]["text"]
    assert NOT_IN_DOCS in text and f"<#{HR}>" in text and "https://fake.slack.com/archives/" in text
    notices = [c.args["text"] for c in bot.slack.calls_to("chat.postEphemeral")]
    assert notices == [asked_owner_notice(ASK_HR)] * 2  # the asker is told where it went
    assert_no_mentions(bot.slack)


def _assistant(bot: Bot, kind: str, channel: str, thread_ts: str, viewing: str | None) -> None:
    event = assistant_thread_event(kind, channel, thread_ts, "U0ALICE", viewing)
    assert post_event(bot.url, event_body(event)).status == 200
    bot.wait_idle()


def _prompts(call: Call) -> list[dict[str, str]]:
    prompts = call.args["prompts"]
    return json.loads(prompts) if isinstance(prompts, str) else prompts


def test_assistant_thread_gets_prompts_then_a_title_from_its_first_question(native_bot: Callable[..., Bot]) -> None:
    bot = native_bot()
    dm = "D0ALICE"
    root = bot.slack.add_message(dm, "U0ALICE", "New chat")
    _assistant(bot, "assistant_thread_started", dm, root, None)
    [call] = bot.slack.calls_to("assistant.threads.setSuggestedPrompts")
    assert call.args["channel_id"] == dm and call.args["thread_ts"] == root
    # no history yet: the configured prompts of the default scope
    assert _prompts(call) == [
        {"title": "How many vacation days do I get?", "message": "How many vacation days do I get?"},
        {"title": "How do I set up the VPN?", "message": "How do I set up the VPN?"},
    ]

    bot.llm.push(answer(VACATION_ANSWER))
    bot.llm.push(answer(VACATION_ANSWER))
    for text in (QUESTION, "And for part-time staff?"):
        ts = bot.slack.add_message(dm, "U0ALICE", text, thread_ts=root)
        post_event(bot.url, event_body(message_event(dm, "U0ALICE", text, ts, thread_ts=root, channel_type="im")))
        bot.answer_in(dm, root, count=1 if text == QUESTION else 2)
    [title] = bot.slack.calls_to("assistant.threads.setTitle")  # the first question only
    assert title.args == {"channel_id": dm, "thread_ts": root, "title": QUESTION}
    assert_no_mentions(bot.slack)


def test_the_most_asked_answered_questions_become_the_suggested_prompts(native_bot: Callable[..., Bot]) -> None:
    bot = native_bot(suggest_min_askers=1)  # tests/test_privacy_suggestions.py: who may see what
    state = bot.runtime.state
    asked = {"How do I get a parking permit?": 3, "How many vacation days do I get?": 2, "Who approves expenses?": 1}
    for n, (text, times) in enumerate(asked.items()):
        for i in range(times):
            qid = state.questions.add_question(
                event_id=None, channel=GENERAL, thread_ts=f"{n}.{i}", message_ts=f"{n}.{i}", user=f"U{i}", text=text
            )
            state.questions.add_answer(qid, Answer("…", "generated"))
    for i in range(5):  # asked most, but its answers were rated 👎: not suggested
        qid = state.questions.add_question(
            event_id=None, channel=GENERAL, thread_ts=f"9.{i + 2}", message_ts=f"9.{i + 2}", user="U1", text="Bad one?"
        )
        state.feedback.record(state.questions.add_answer(qid, Answer("…", "generated")), "U2", "down")
    _assistant(bot, "assistant_thread_started", "D0BOB", "111.1", GENERAL)  # asked in the channel being viewed
    [call] = bot.slack.calls_to("assistant.threads.setSuggestedPrompts")
    assert [p["message"] for p in _prompts(call)] == [
        "How do I get a parking permit?",
        "How many vacation days do I get?",
        "Who approves expenses?",
        "How do I set up the VPN?",  # topped up from the configured list
    ]


def test_the_channel_the_user_is_viewing_selects_the_doc_scope(native_bot: Callable[..., Bot]) -> None:
    bot = native_bot()
    dm = "D0ALICE"
    root = bot.slack.add_message(dm, "U0ALICE", "New chat")
    _assistant(bot, "assistant_thread_started", dm, root, GENERAL)
    _assistant(bot, "assistant_thread_context_changed", dm, root, HR)  # the user opened #hr-help
    bot.llm.push(answer(["Connect with the VPN client [1]."]))
    text = "How do I connect to the VPN?"
    ts = bot.slack.add_message(dm, "U0ALICE", text, thread_ts=root)
    post_event(bot.url, event_body(message_event(dm, "U0ALICE", text, ts, thread_ts=root, channel_type="im")))
    [message] = bot.answer_in(dm, root)
    paths = bot.runtime.state.questions.source_paths(_answer_id(message))
    assert paths and all(p.startswith("hr/") for p in paths)  # HR's scope, not the VPN guide

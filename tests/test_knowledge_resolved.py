"""Resolved threads as a source: in a channel with `resolved_threads: true`, a ✅ by the thread's asker
(or an expert: someone who replied, or an admin) on a reply saves the thread as a learned answer, once,
and the next question in the scope is answered from it; a bystander's ✅, a channel without the key, a
private channel the scopes file does not list and a DM save nothing. Over the fake Slack, signed events."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from support.fake_openai import answer
from support.fake_slack import Message, event_body, post_event
from support.knowledge import (
    ADMIN,
    ASKER,
    ENGINEERING,
    EXPERT,
    GENERAL,
    HR,
    HR_TOO,
    OTHER,
    all_text,
    channel_message,
    knowledge_bot,
    mention,
)
from support.slack_bot import Bot

SECRET = "G0SECRET01"  # a private channel the scopes file does not list
LISTED = "G0HRPRIVAT"  # a private channel the admin listed with the key
DM = "D0ALICE001"
QUESTION = "Which badge colour do contractors get at reception?"
EXPERT_REPLY = "Contractors get a green badge at reception; bring your contract on the first day."
MARKER = "green badge"


def _scopes(tmp_path: Path) -> Path:
    path = tmp_path / "resolved_scopes.yml"
    path.write_text(
        f"""
default: {{resolved_threads: true}}   # unlisted public channels
channels:
  {HR}: {{path_prefixes: [hr/], resolved_threads: true}}
  {HR_TOO}: {{path_prefixes: [hr/]}}
  {ENGINEERING}: {{path_prefixes: [engineering/]}}
  {LISTED}: {{path_prefixes: [hr/], resolved_threads: true}}
"""
    )
    return path


def _react(bot: Bot, channel: str, user: str, ts: str, name: str = "white_check_mark") -> None:
    """`user` adds the reaction `name` to the message `ts`: the reaction_added event Slack sends."""
    item_user = bot.slack.messages[(channel, ts)].user
    event = {
        "type": "reaction_added",
        "user": user,
        "reaction": name,
        "item_user": item_user,
        "item": {"type": "message", "channel": channel, "ts": ts},
        "event_ts": bot.slack.next_ts(),
    }
    assert post_event(bot.url, event_body(event)).status == 200
    bot.wait_idle()


def _resolved_thread(bot: Bot, channel: str, channel_type: str = "channel") -> tuple[str, str]:
    """The asker's question and an expert's reply in its thread; returns (thread ts, reply ts)."""
    root = channel_message(bot, channel, ASKER, QUESTION, channel_type=channel_type)
    reply = channel_message(bot, channel, EXPERT, EXPERT_REPLY, thread_ts=root, channel_type=channel_type)
    bot.wait_idle()
    return root, reply


def _answer(bot: Bot, channel: str, text: str, reply: list[str]) -> tuple[Message, str]:
    """OTHER asks the bot in `channel`; returns its answer and what the model was sent."""
    before = len(bot.llm.bodies)
    bot.llm.push(answer(reply))
    ts = mention(bot, channel, OTHER, text)
    found = bot.answer_in(channel, ts)[-1]
    bot.wait_idle()
    return found, json.dumps(bot.llm.bodies[before:])


@pytest.mark.slow
def test_a_reply_marked_resolved_by_the_asker_is_saved_once_and_answers_the_next_question_in_its_scope(
    make_bot: Callable[..., Bot], tmp_path: Path, small_index: Path
) -> None:
    bot = knowledge_bot(make_bot, tmp_path, small_index, _scopes(tmp_path))
    root, reply = _resolved_thread(bot, HR)
    _react(bot, HR, OTHER, reply)  # a bystander: neither asked nor replied
    _react(bot, HR, ASKER, reply, name="thumbsup")  # not the resolved mark
    assert bot.runtime.state.knowledge.learned_answers() == []
    _react(bot, HR, ASKER, reply)
    [learned] = bot.runtime.state.knowledge.learned_answers()
    assert (learned.question, learned.answer, learned.author, learned.saved_by) == (
        QUESTION,
        EXPERT_REPLY,
        EXPERT,
        ASKER,
    )
    assert learned.permalink == f"https://fake.slack.com/archives/{HR}/p{root.replace('.', '')}"
    [saved] = [m for m in bot.slack.bot_messages(HR, root) if "learned_remove" in all_text(m)]
    _react(bot, HR, EXPERT, reply)  # once per thread
    _react(bot, HR, ADMIN, reply)
    assert len(bot.runtime.state.knowledge.learned_answers()) == 1
    assert [m.ts for m in bot.slack.bot_messages(HR, root)] == [saved.ts]

    # another thread in another channel of the same scope: answered from it, citing the expert
    cited, prompt = _answer(bot, HR_TOO, QUESTION, ["Contractors get a ", "green badge at reception [1]."])
    assert MARKER in prompt
    assert "answered by Dana Expert" in all_text(cited) and learned.permalink in all_text(cited)


@pytest.mark.slow
def test_resolved_marks_save_nothing_without_the_key_nor_in_unlisted_private_channels_and_dms(
    make_bot: Callable[..., Bot], tmp_path: Path, small_index: Path
) -> None:
    bot = knowledge_bot(make_bot, tmp_path, small_index, _scopes(tmp_path))
    marked = []
    for channel, kind in ((ENGINEERING, "channel"), (HR_TOO, "channel"), (SECRET, "group")):
        _, reply = _resolved_thread(bot, channel, kind)
        marked.append(reply)
        _react(bot, channel, ASKER, reply)
        _react(bot, channel, ADMIN, reply)
        assert bot.runtime.state.knowledge.learned_answers() == [], channel
        assert not [m for m in bot.slack.bot_messages(channel) if "learned_remove" in all_text(m)], channel
    # a thread in a DM (its messages would be questions to the bot: only the thread is set up here)
    root = bot.slack.add_message(DM, ASKER, QUESTION)
    marked.append(bot.slack.add_message(DM, EXPERT, EXPERT_REPLY, thread_ts=root))
    for user in (ASKER, ADMIN):
        _react(bot, DM, user, marked[-1])
    assert bot.runtime.state.knowledge.learned_answers() == []
    # nothing of theirs was read either
    assert [c for c in bot.slack.calls_to("conversations.replies") if c.args.get("ts") in marked] == []

    # the same marks where the scopes allow it: a public channel not listed (default says true), and the
    # private channel the admin listed with the key
    for channel, kind in ((GENERAL, "channel"), (LISTED, "group")):
        _, reply = _resolved_thread(bot, channel, kind)
        _react(bot, channel, ASKER, reply)
    assert sorted(a.channel for a in bot.runtime.state.knowledge.learned_answers()) == sorted([GENERAL, LISTED])

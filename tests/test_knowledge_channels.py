"""Where questions are asked: a support channel in auto mode (answered without a mention, only when
grounded; silent otherwise, or 👀), a thread the bot is summoned into (it answers the thread's open
question), and a private answer shared in the channel. Over the fake Slack with signed events."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from support.fake_openai import answer
from support.fake_slack import BOT_USER, Message
from support.knowledge import (
    ASKER,
    GENERAL,
    HELPDESK,
    OTHER,
    all_text,
    channel_message,
    click_on,
    drop_unused,
    knowledge_bot,
    mention,
    responses,
    slash,
)
from support.slack_bot import Bot

VACATION = "How many vacation days do I get per year?"
VACATION_REPLY = ["Full-time employees get ", "27 vacation days per calendar year [1]."]
UNKNOWN = "What is the wifi password in the Tokyo office?"


def _bot_said(bot: Bot, channel: str, thread_ts: str) -> list[Message]:
    return bot.slack.bot_messages(channel, thread_ts)


@pytest.mark.slow
def test_auto_mode_answers_a_grounded_question_and_stays_silent_on_chatter_and_ungrounded_answers(
    make_bot: Callable[..., Bot], tmp_path: Path, small_index: Path
) -> None:
    bot = knowledge_bot(make_bot, tmp_path, small_index)
    bot.llm.push(answer(VACATION_REPLY))
    asked = channel_message(bot, HELPDESK, ASKER, VACATION)
    [answered] = bot.answer_in(HELPDESK, asked)
    assert "27 vacation days" in all_text(answered) and "hr/vacation.md" in all_text(answered)

    chatter = [
        channel_message(bot, HELPDESK, OTHER, "Good morning everyone! :sunny:"),
        channel_message(bot, HELPDESK, OTHER, "Reminder: the office is closed on Friday for the move."),
        channel_message(bot, HELPDESK, OTHER, f"<@{ASKER}> did you get my email about the vacation days?"),
    ]
    bot.wait_idle()
    assert len(bot.llm.bodies) == 1  # chatter is never even searched for
    before = len(bot.llm.bodies)
    bot.llm.push(answer(["NOT_IN_DOCS"]))
    unknown = channel_message(bot, HELPDESK, OTHER, UNKNOWN)
    bot.wait_idle()
    drop_unused(bot, before)
    for ts in [*chatter, unknown]:
        assert _bot_said(bot, HELPDESK, ts) == [], ts
        assert not bot.slack.messages[(HELPDESK, ts)].reactions
    # the person may reply in the silent thread: it is not the bot's (no answer to the follow-up)
    channel_message(bot, HELPDESK, ASKER, "It's on the welcome sheet, I think.", thread_ts=unknown)
    bot.wait_idle()
    assert _bot_said(bot, HELPDESK, unknown) == []

    # a channel in mention mode (the default) is never answered without a mention
    asked_models = len(bot.llm.bodies)
    channel_message(bot, GENERAL, ASKER, VACATION)
    bot.wait_idle()
    assert len(bot.llm.bodies) == asked_models and not bot.slack.bot_messages(GENERAL)


@pytest.mark.slow
def test_auto_mode_reacts_when_unsure_if_set_and_limits_answers_per_channel(
    make_bot: Callable[..., Bot], tmp_path: Path, small_index: Path
) -> None:
    bot = knowledge_bot(make_bot, tmp_path, small_index, auto_unsure_reaction=True, auto_channel_per_minute=1)
    before = len(bot.llm.bodies)
    bot.llm.push(answer(["NOT_IN_DOCS"]))
    unknown = channel_message(bot, HELPDESK, OTHER, UNKNOWN)
    bot.slack.wait_for(lambda s: "eyes" in s.messages[(HELPDESK, unknown)].reactions)
    bot.wait_idle()
    drop_unused(bot, before)
    assert _bot_said(bot, HELPDESK, unknown) == []
    # that question took the channel's one answer this minute: another person's question waits
    bot.llm.push(answer(VACATION_REPLY))
    asked = channel_message(bot, HELPDESK, ASKER, VACATION)
    bot.wait_idle()
    assert _bot_said(bot, HELPDESK, asked) == []
    bot.llm.next_responder()


@pytest.mark.slow
def test_a_bare_mention_in_a_thread_answers_the_threads_open_question(
    make_bot: Callable[..., Bot], tmp_path: Path, small_index: Path
) -> None:
    bot = knowledge_bot(make_bot, tmp_path, small_index)
    root = channel_message(bot, GENERAL, ASKER, VACATION)
    channel_message(bot, GENERAL, OTHER, "Not sure, it changed this year.", thread_ts=root)
    bot.wait_idle()
    assert not bot.slack.bot_messages(GENERAL)  # people's thread: not the bot's until it is called in
    bot.llm.push(answer(VACATION_REPLY))
    summon = mention(bot, GENERAL, OTHER, "can you help?", thread_ts=root)
    [answered] = bot.answer_in(GENERAL, root)
    assert "27 vacation days" in all_text(answered)
    prompt = bot.llm.bodies[-1]["messages"][-1]["content"]
    assert f"Question: {VACATION}" in prompt and "hr/vacation.md" in prompt
    asked = bot.runtime.state.knowledge.question_text(1)
    assert asked == VACATION, asked
    assert summon  # answered in the thread it was summoned into

    # with a question of its own, that question is asked (the thread is its context)
    bot.llm.push(answer(["Request it in PeopleHub under Time off [1]."]))
    mention(bot, GENERAL, ASKER, "how do I request vacation?", thread_ts=root)
    bot.answer_in(GENERAL, root, count=2)
    assert "how do I request vacation?" in bot.llm.bodies[-1]["messages"][-1]["content"]


@pytest.mark.slow
def test_a_private_answer_is_shown_to_the_asker_alone_and_shared_once_with_its_sources(
    make_bot: Callable[..., Bot], tmp_path: Path, small_index: Path
) -> None:
    bot = knowledge_bot(make_bot, tmp_path, small_index)
    bot.llm.push(answer(VACATION_REPLY))
    delivery = slash(bot, f"ask {VACATION}", user=ASKER, channel=GENERAL)
    assert delivery.status == 200 and "only you" in delivery.body
    [private] = bot.slack.wait_for(lambda s: responses(bot, f"cmd-{ASKER}"))
    bot.wait_idle()
    blocks = json.loads(private["blocks"]) if isinstance(private["blocks"], str) else private["blocks"]
    assert private.get("response_type") == "ephemeral" and "hr/vacation.md" in json.dumps(blocks)
    assert not bot.slack.bot_messages(GENERAL)  # nothing in the channel yet, nothing recorded as asked there
    assert bot.runtime.state.questions.counts()["questions"] == 0

    shown = Message(GENERAL, "0", BOT_USER, private.get("text", ""), None, blocks=blocks)
    click_on(bot, shown, "share", OTHER)  # not theirs to share
    bot.wait_idle()
    assert not bot.slack.bot_messages(GENERAL)
    click_on(bot, shown, "share", ASKER)
    [shared] = bot.slack.wait_for(lambda s: [m for m in s.bot_messages(GENERAL) if "feedback" in all_text(m)])
    text = all_text(shared)
    assert "alice shared an answer" in text and VACATION in text
    assert "27 vacation days" in text and "hr/vacation.md" in text and "<@" not in text
    click_on(bot, shown, "share", ASKER)  # once only
    bot.wait_idle()
    assert len(bot.slack.bot_messages(GENERAL)) == 1
    assert bot.runtime.state.questions.answered_thread(GENERAL, shared.ts)  # its thread takes follow-ups

"""A channel with `answers: private` in the scopes file: a mention there is answered to the asker alone
(chat.postEphemeral, with the answer's sources and "Share in channel"), nothing in the channel until
they share it; the shared answer's thread takes follow-ups as any answer's does; a channel without the
option answers in the open. Over the fake Slack with signed events."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support.fake_openai import answer
from support.fake_slack import BOT_USER, STREAM_METHODS, Message
from support.knowledge import ASKER, GENERAL, OTHER, all_text, channel_message, click_on, knowledge_bot, mention
from support.slack_bot import Bot

PRIVATE_FIRST = "C0PRIVFRST"
VACATION = "How many vacation days do I get per year?"
VACATION_REPLY = ["Full-time employees get ", "27 vacation days per calendar year [1]."]


def _scopes(tmp_path: Path) -> Path:
    path = tmp_path / "private_scopes.yml"
    path.write_text(f"channels:\n  {PRIVATE_FIRST}: {{answers: private}}\n")
    return path


def _in_channel(bot: Bot, channel: str, methods: tuple[str, ...]) -> list[Any]:
    return [c for m in methods for c in bot.slack.calls_to(m) if c.args.get("channel") == channel]


def _blocks(args: dict[str, Any]) -> list[dict[str, Any]]:
    blocks = args.get("blocks") or []
    return json.loads(blocks) if isinstance(blocks, str) else list(blocks)


@pytest.mark.slow
def test_a_mention_in_a_private_answers_channel_is_answered_to_the_asker_alone_until_shared(
    make_bot: Callable[..., Bot], tmp_path: Path, small_index: Path
) -> None:
    bot = knowledge_bot(make_bot, tmp_path, small_index, _scopes(tmp_path))
    bot.llm.push(answer(VACATION_REPLY))
    mention(bot, PRIVATE_FIRST, ASKER, VACATION)
    [shown] = bot.slack.wait_for(lambda s: _in_channel(bot, PRIVATE_FIRST, ("chat.postEphemeral",)))
    bot.wait_idle()
    assert shown.args["user"] == ASKER
    blocks = _blocks(shown.args)
    assert "27 vacation days" in json.dumps(blocks) and "hr/vacation.md" in json.dumps(blocks)
    assert "share" in [b.get("block_id") for b in blocks]
    # nothing in the channel: no message, no stream, nothing recorded as asked there
    assert _in_channel(bot, PRIVATE_FIRST, ("chat.postMessage", "chat.update", *STREAM_METHODS)) == []
    assert not bot.slack.bot_messages(PRIVATE_FIRST)
    assert bot.runtime.state.questions.counts()["questions"] == 0

    private = Message(PRIVATE_FIRST, "0", BOT_USER, shown.args.get("text", ""), None, blocks=blocks)
    click_on(bot, private, "share", OTHER)  # not theirs to share
    bot.wait_idle()
    assert not bot.slack.bot_messages(PRIVATE_FIRST)
    click_on(bot, private, "share", ASKER)
    [shared] = bot.slack.wait_for(lambda s: [m for m in s.bot_messages(PRIVATE_FIRST) if "feedback" in all_text(m)])
    assert "alice shared an answer" in all_text(shared) and "hr/vacation.md" in all_text(shared)

    # a follow-up in the shared answer's thread is answered there, in the open, as today
    bot.llm.push(answer(["Part-time employees get them pro rata [1]."]))
    channel_message(bot, PRIVATE_FIRST, ASKER, "And part-time employees?", thread_ts=shared.ts)
    [follow_up] = bot.answer_in(PRIVATE_FIRST, shared.ts)
    assert "pro rata" in all_text(follow_up)
    assert len(_in_channel(bot, PRIVATE_FIRST, ("chat.postEphemeral",))) == 1

    # a channel without the option answers in the open
    bot.llm.push(answer(VACATION_REPLY))
    asked = mention(bot, GENERAL, ASKER, VACATION)
    [public] = bot.answer_in(GENERAL, asked)
    assert "27 vacation days" in all_text(public)
    assert _in_channel(bot, GENERAL, ("chat.postEphemeral",)) == []

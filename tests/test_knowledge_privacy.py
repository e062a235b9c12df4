"""Privacy across channels for what the bot learns: an expert's reply in a private channel the scopes
file does not list is never kept as an answer (it would answer in public channels); the digest and
`qwenbot gaps` count escalations, saved answers and citations from public channels only; a learned
answer saved in a public channel of the default scope answers there, citing its author."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from support.fake_openai import answer
from support.fake_slack import Message
from support.knowledge import (
    ASKER,
    EXPERT,
    GENERAL,
    OTHER,
    all_text,
    asked,
    channel_message,
    click_on,
    ephemerals,
    knowledge_bot,
    mention,
    opened_view,
    submit_save,
)
from support.slack_bot import Bot

from bot.gaps.render import digest_message
from bot.gaps.report import GapReport
from bot.knowledge.summary import knowledge_summary

SECRET = "C0SECRETS1"  # a private channel, not in the scopes file
GENERAL_TOO = "C0RANDOM01"  # another public channel of the default scope
QUESTION = "Which badge colour do contractors get at reception?"
REPLY = "Contractors get a green badge at reception."


def _scopes(tmp_path: Path) -> Path:
    path = tmp_path / "default_experts.yml"
    path.write_text("default: {experts: S0DEFAULTX}\n")
    return path


def _escalated_and_replied(bot: Bot, channel: str, channel_type: str) -> Message:
    """Asked, escalated, an expert replied: the bot's save offer in the thread."""
    first = asked(bot, channel, ASKER, QUESTION, channel_type=channel_type)
    click_on(bot, first, "escalate", ASKER)
    bot.wait_idle()
    channel_message(bot, channel, EXPERT, REPLY, thread_ts=first.thread_ts, channel_type=channel_type)
    found: list[Message] = bot.slack.wait_for(
        lambda s: [m for m in s.bot_messages(channel, first.thread_ts) if "learned_offer" in all_text(m)]
    )
    return found[0]


@pytest.mark.slow
def test_a_private_channels_expert_reply_is_never_kept_and_the_digest_counts_public_channels_only(
    make_bot: Callable[..., Bot], tmp_path: Path, small_index: Path
) -> None:
    bot = knowledge_bot(make_bot, tmp_path, small_index, scopes=_scopes(tmp_path))
    started = time.time()
    offer = _escalated_and_replied(bot, SECRET, "group")
    click_on(bot, offer, "learned_offer", EXPERT)
    bot.wait_idle()
    assert not bot.slack.calls_to("views.open")
    assert any("private channel" in t for t in ephemerals(bot, EXPERT))

    offer = _escalated_and_replied(bot, GENERAL, "channel")
    click_on(bot, offer, "learned_offer", EXPERT)
    submit_save(bot, opened_view(bot), EXPERT)
    bot.slack.wait_for(lambda s: [m for m in s.bot_messages(GENERAL) if "learned_remove" in all_text(m)])
    bot.wait_idle()
    [learned] = bot.runtime.state.knowledge.learned_answers()
    assert (learned.channel, learned.scope) == (GENERAL, "default")

    # another public channel of the default scope is answered from it
    bot.llm.push(answer(["A green badge [1]."]))
    ts = mention(bot, GENERAL_TOO, OTHER, QUESTION)
    assert "answered by Dana Expert" in all_text(bot.answer_in(GENERAL_TOO, ts)[-1])
    bot.wait_idle()

    summary = knowledge_summary(bot.runtime.state.knowledge, started, time.time() + 1, "public")
    assert summary.escalations == 1  # the private channel's is not shown
    assert [(s.question, s.channel) for s in summary.saved] == [(QUESTION, GENERAL)]
    assert [(c.question, c.citations) for c in summary.cited] == [(QUESTION, 1)]
    assert knowledge_summary(bot.runtime.state.knowledge, started, time.time() + 1, "channels").escalations == 2
    digest = digest_message(GapReport(started, time.time(), [], summary), [], {})
    shown = json.dumps(digest.blocks)
    assert "What the bot learned" in shown and "Escalated to experts: 1" in shown and "cited 1x" in shown
    assert SECRET not in shown

"""Streaming a long answer in small pieces costs time in proportion to its length, not its square."""

from __future__ import annotations

import time

from support.fake_slack import BOT_TOKEN, TEAM, FakeSlack

from bot.settings import load_settings
from bot.slack.client import make_client
from bot.slack.reply import ThreadReply

CHANNEL = "C0GENERAL"


def _cpu_seconds_to_append(slack: FakeSlack, chars: int) -> float:
    """CPU time for one reply to take `chars` characters of answer in 4-character pieces."""
    settings = load_settings(None, slack_api_url=slack.api_url, slack_bot_token=BOT_TOKEN)
    ts = slack.add_message(CHANNEL, "U0ALICE", "<@U0BOT> tell me everything")
    # a clock that never moves: every piece arrives "at once", as a fast model sends them
    reply = ThreadReply(
        make_client(settings.slack_config()), CHANNEL, ts, ts, user="U0ALICE", team=TEAM, clock=lambda: 0.0
    )
    text = ("word " * (chars // 5 + 1))[:chars]
    # this thread's CPU only: the fake Slack's threads (and any an earlier test left) are not the reply's work
    start = time.thread_time()
    for i in range(0, chars, 4):
        reply.append(text[i : i + 4])
    return time.thread_time() - start


def test_appending_64k_characters_in_4_character_pieces_is_cheap_and_linear(slack: FakeSlack) -> None:
    half = _cpu_seconds_to_append(slack, 32_000)
    full = _cpu_seconds_to_append(slack, 64_000)
    # before: 19.7 s of CPU for 64k characters on the reference machine (5.1 s for 32k)
    assert full < 1.5, f"{full:.2f} s of CPU for 64k characters"
    # linear doubles the time, quadratic quadruples it; the constant absorbs the noise of a busy machine
    assert full < 2.5 * half + 0.25, f"32k: {half:.3f} s, 64k: {full:.3f} s: not linear"
    # the stream still went out: the first part of the answer, in pieces, and no more than one message
    [stream] = slack.calls_to("chat.startStream")[-1:]
    assert stream.args["markdown_text"].startswith("word")
    assert slack.calls_to("chat.appendStream")

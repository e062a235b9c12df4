"""SIGTERM while answers are being written: `qwenbot run --http` stops taking events, lets the answers
in progress finish (up to QWENBOT_DRAIN_SECONDS), cuts off the rest with a message, then exits 0."""

from __future__ import annotations

import signal
import sqlite3
import time
from pathlib import Path

import pytest
from support.fake_openai import FakeOpenAI, Responder, answer
from support.fake_slack import BOT_USER, FakeSlack, Message, event_body, mention_event, post_event
from support.processes import running_bot
from support.slack_bot import QUESTION, VACATION_ANSWER

from bot.slack.answering import INTERRUPTED

pytestmark = pytest.mark.slow  # `qwenbot run --http` processes


def ask_in(slack: FakeSlack, url: str, channels: list[str]) -> list[str]:
    """Mentions the bot once in each channel; every delivery must be acked. Returns the question ts."""
    threads = []
    for i, channel in enumerate(channels):
        text = f"<@{BOT_USER}> {QUESTION}"
        ts = slack.add_message(channel, f"U0USER{i:02d}", text)
        assert post_event(url, event_body(mention_event(channel, f"U0USER{i:02d}", text, ts))).status == 200
        threads.append(ts)
    return threads


def replies(slack: FakeSlack, channel: str, ts: str) -> list[Message]:
    return [m for m in slack.bot_messages(channel, ts) if not m.streaming]


def test_sigterm_lets_the_answers_in_progress_finish(corpus_index: Path, tmp_path: Path) -> None:
    n = 20
    channels = [f"C0DRAIN{i:02d}" for i in range(n)]
    with FakeSlack() as slack, FakeOpenAI() as llm:
        # each answer streams for about 1.5 s
        llm.push(*[answer(VACATION_ANSWER, chunk_delay=0.5) for _ in range(n)])
        with running_bot(slack, llm, corpus_index, tmp_path, QWENBOT_DRAIN_SECONDS="60") as bot:
            threads = ask_in(slack, bot.url, channels)
            slack.wait_for(lambda s: s.calls_to("chat.startStream"), timeout=120)  # answers are being written
            bot.proc.send_signal(signal.SIGTERM)
            started = time.monotonic()
            assert bot.proc.wait(timeout=90) == 0
            log = "".join(bot.log)
    # before: 16 apologies, 4 with no reply at all, 20 x "Cannot operate on a closed database", in 3.6 s
    assert "closed database" not in log and "Traceback" not in log, log[-3000:]
    for channel, ts in zip(channels, threads, strict=True):
        [message] = replies(slack, channel, ts)
        assert message.text == "".join(VACATION_ANSWER) and message.blocks[-1]["block_id"] == "feedback"
    assert time.monotonic() - started < 60


def test_answers_still_running_at_the_drain_deadline_say_so_and_stay_claimable(
    corpus_index: Path, tmp_path: Path
) -> None:
    n = 5
    channels = [f"C0SLOW{i:02d}" for i in range(n)]
    endless: list[Responder] = [answer(["tick "] * 200, chunk_delay=0.3) for _ in range(n)]  # a minute each
    with FakeSlack() as slack, FakeOpenAI() as llm:
        llm.push(*endless)
        with running_bot(slack, llm, corpus_index, tmp_path, QWENBOT_DRAIN_SECONDS="2") as bot:
            threads = ask_in(slack, bot.url, channels)
            # all are streaming the model's text (the stream itself starts earlier, with the task steps)
            slack.wait_for(
                lambda s: len({c.args["ts"] for c in s.calls_to("chat.appendStream") if "tick" in str(c.args)}) >= n,
                timeout=120,
            )
            bot.proc.send_signal(signal.SIGTERM)
            started = time.monotonic()
            assert bot.proc.wait(timeout=60) == 0
            elapsed = time.monotonic() - started
            log = "".join(bot.log)
    # the drain (2 s) and the cut-off grace (5 s), not the minute the answers would still take
    assert elapsed < 40
    assert "closed database" not in log and "Traceback" not in log, log[-3000:]
    for channel, ts in zip(channels, threads, strict=True):
        assert replies(slack, channel, ts)[-1].text == INTERRUPTED  # a visible end, not silence
    # not marked done: a redelivery of these events after the restart would be answered
    with sqlite3.connect(tmp_path / "state.sqlite3") as db:
        assert db.execute("SELECT COUNT(*) FROM claims").fetchone()[0] == 0

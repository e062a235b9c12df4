"""A follow-up sent while the bot is still writing its answer is answered too, after that answer."""

from __future__ import annotations

import json
from collections.abc import Callable

from support.fake_openai import answer
from support.fake_slack import event_body, message_event, post_event
from support.slack_bot import GENERAL, QUESTION, VACATION_ANSWER, Bot

FOLLOW_UP = "and can I carry unused days over to next year?"


def test_a_follow_up_sent_mid_answer_waits_its_turn_and_sees_the_first_answer(make_bot: Callable[..., Bot]) -> None:
    bot = make_bot()
    # the first answer takes a few seconds to stream: time for the follow-up to arrive mid-answer
    bot.llm.push(answer(VACATION_ANSWER * 4, chunk_delay=0.25), answer(["Unused days carry over, up to 5 [1]."]))
    ts, _ = bot.ask(QUESTION)
    bot.slack.wait_for(lambda s: [c for c in s.calls_to("chat.startStream") if c.args.get("thread_ts") == ts])

    reply_ts = bot.slack.add_message(GENERAL, "U0ALICE", FOLLOW_UP, thread_ts=ts)
    delivery = post_event(bot.url, event_body(message_event(GENERAL, "U0ALICE", FOLLOW_UP, reply_ts, thread_ts=ts)))
    assert delivery.status == 200
    # before: the follow-up was claimed and dropped (the thread was not the bot's until the answer was
    # stored), so only one answer ever came
    first, second = bot.answer_in(GENERAL, ts, count=2, timeout=60)
    assert "25 days" in first.text and "carry over" in second.text
    # thread order kept: the second answer started only after the first was finished
    methods = [(c.method, c.args.get("ts")) for c in bot.slack.calls]
    _, second_start = [i for i, (method, _) in enumerate(methods) if method == "chat.startStream"]
    assert methods.index(("chat.stopStream", first.ts)) < second_start
    history = json.dumps(bot.llm.bodies[1]["messages"])
    assert QUESTION in history and "25 days" in history  # it saw the whole first answer

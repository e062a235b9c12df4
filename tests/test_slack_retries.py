"""Slack's Web API failing for a moment (5xx, a dropped connection): the call is made again within a
small budget, so a complete answer still ends with its sources and buttons, never with an apology."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from support.fake_openai import answer
from support.fake_slack import FakeSlack
from support.slack_bot import GENERAL, QUESTION, VACATION_ANSWER, Bot

from bot.settings import load_settings
from bot.slack.client import make_client


def test_two_503s_on_stop_stream_still_end_the_answer_with_sources_and_buttons(make_bot: Callable[..., Bot]) -> None:
    bot = make_bot()
    bot.llm.push(answer(VACATION_ANSWER))
    bot.slack.fail("chat.stopStream", "service_unavailable", status=503, times=2)
    ts, _ = bot.ask(QUESTION)
    [message] = bot.answer_in(GENERAL, ts)
    bot.wait_idle()

    assert message.text == "".join(VACATION_ANSWER)
    assert [b["type"] for b in message.blocks] == ["markdown", "section", "context_actions"]
    assert message.blocks[1]["text"]["text"].startswith("*Sources*")
    stops = bot.slack.calls_to("chat.stopStream", ok_only=False)
    assert [c.ok for c in stops] == [False, False, True]
    assert not bot.slack.calls_to("chat.postMessage")  # no apology
    assert bot.runtime.state.questions.counts()["answers"] == 1


@pytest.mark.slow
def test_5xx_and_dropped_connections_are_retried_within_a_budget_and_429_after_retry_after(slack: FakeSlack) -> None:
    client = make_client(
        load_settings(None, slack_api_url=slack.api_url, slack_bot_token="xoxb-test-bot-token").slack_config()
    )
    slack.fail("auth.test", "internal_error", status=500)
    slack.fail("auth.test", "bad_gateway", status=502)
    assert client.auth_test()["ok"]
    slack.fail("chat.postMessage", "ratelimited", status=429, retry_after=0)
    assert client.chat_postMessage(channel=GENERAL, text="hi")["ok"]
    # the budget: a Slack that keeps failing gets 3 retries, then the error is the caller's
    slack.fail("auth.test", "service_unavailable", status=503, times=10)
    calls = len(slack.calls_to("auth.test", ok_only=False))
    try:
        client.auth_test()
    except Exception as exc:
        assert "service_unavailable" in str(exc)
    else:
        raise AssertionError("a Slack failing 10 times in a row must fail the call")
    assert len(slack.calls_to("auth.test", ok_only=False)) - calls == 4

"""The state database (a real PostgreSQL) stopped while the bot runs, and started again: events that
come meanwhile are refused so that Slack delivers them again, or held; every question is answered
exactly once after the database is back, and an answer that was streaming ends with its sources."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from slack_bolt.adapter.socket_mode import SocketModeHandler
from support import servers
from support.fake_openai import answer
from support.fake_slack import (
    APP_TOKEN,
    BOT_USER,
    Delivery,
    FakeSocketMode,
    Message,
    event_body,
    mention_event,
    message_event,
    post_event,
)
from support.outage import (
    OUTAGE_TIMEOUT,
    STREAMED,
    RestartablePostgres,
    http_status,
    restartable_postgres,
    stream_then_wait,
    wait_for,
)
from support.slack_bot import GENERAL, QUESTION, Bot

pytestmark = pytest.mark.slow  # a real PostgreSQL stopped and started under the bot


@pytest.fixture(scope="module")
def postgres() -> Iterator[RestartablePostgres]:
    """A PostgreSQL server of this module's own: its tests stop it."""
    with restartable_postgres() as server:
        yield server


def _health(bot: Bot) -> int:
    return http_status(bot.url.replace("/slack/events", "/healthz"))


def _finished(slack_bot: Bot, ts: str) -> list[Message]:
    return [m for m in slack_bot.slack.bot_messages(GENERAL, ts) if not m.streaming]


def _apologies(bot: Bot) -> list[str]:
    return [c.args.get("text", "") for c in bot.slack.calls_to("chat.postMessage") if "Sorry" in c.args.get("text", "")]


def test_questions_asked_while_the_state_database_is_down_are_answered_once_it_is_back(
    make_bot: Callable[..., Bot], postgres: RestartablePostgres
) -> None:
    bot = make_bot(state_url=servers.new_database(postgres.url))
    texts = [f"question {i}: how many vacation days do I get?" for i in range(4)]
    bot.llm.push(*(answer([f"Answer {i}: 25 days [1]."]) for i in range(len(texts))))
    deliveries: dict[str, tuple[dict[str, Any], Delivery]] = {}

    def ask(i: int, retry_num: int | None = None) -> None:
        text = f"<@{BOT_USER}> {texts[i]}"
        ts = bot.slack.add_message(GENERAL, "U0ALICE", text)
        body = event_body(mention_event(GENERAL, "U0ALICE", text, ts))
        deliveries[ts] = (body, post_event(bot.url, body, retry_num=retry_num))

    postgres.stop()
    ask(0)  # at once: acked (and held) before the bot noticed, or refused after: both are fine
    assert wait_for(lambda: _health(bot) == 503, "/healthz to say the database is down")
    ask(1)
    ask(2)
    ask(3, retry_num=3)  # Slack's last try of an event: taken, and held until the database is back
    statuses = [d.status for _, d in deliveries.values()]
    assert statuses[0] in (200, 503) and statuses[1:] == [503, 503, 200], statuses
    assert all(d.seconds < 3 for _, d in deliveries.values())  # refused at once, not after a pool timeout

    postgres.start()
    assert wait_for(lambda: _health(bot) == 200, "/healthz to say the database is back")
    for body, delivery in list(deliveries.values()):
        if delivery.status != 200:  # Slack delivers again what was not acked
            assert post_event(bot.url, body, retry_num=1).status == 200

    for ts in deliveries:
        bot.answer_in(GENERAL, ts, timeout=OUTAGE_TIMEOUT)
    bot.wait_idle(timeout=OUTAGE_TIMEOUT)
    assert {ts: len(bot.slack.bot_messages(GENERAL, ts)) for ts in deliveries} == {ts: 1 for ts in deliveries}
    assert len(bot.llm.bodies) == len(texts) and not _apologies(bot)
    assert bot.runtime.state.questions.counts()["answers"] == len(texts)


def test_an_answer_streaming_when_the_state_database_goes_down_ends_with_its_sources(
    make_bot: Callable[..., Bot], postgres: RestartablePostgres
) -> None:
    bot = make_bot(state_url=servers.new_database(postgres.url))
    gate = threading.Event()
    bot.llm.push(stream_then_wait(STREAMED, gate), answer(["Unused days carry over, up to 5 [1]."]))
    ts, delivery = bot.ask(QUESTION)
    assert delivery.status == 200
    bot.slack.wait_for(lambda s: any(m.streaming and m.text for m in s.bot_messages(GENERAL, ts)))

    postgres.stop()
    gate.set()
    # the answer ends at once, with its sources; its feedback buttons wait for it to be stored
    [message] = bot.slack.wait_for(lambda s: _finished(bot, ts), timeout=OUTAGE_TIMEOUT)
    assert message.text == "".join(STREAMED)
    assert [b["type"] for b in message.blocks] == ["markdown", "section"]
    assert message.blocks[1]["text"]["text"].startswith("*Sources*")
    assert "hr/vacation" in json.dumps(message.blocks[1])
    assert not _apologies(bot)

    postgres.start()
    # stored once the database is back, and then the buttons are added to the answer
    [rated] = bot.answer_in(GENERAL, ts, timeout=OUTAGE_TIMEOUT)
    assert rated.ts == message.ts and rated.text == message.text
    assert bot.runtime.state.questions.answer_posted(GENERAL, ts)
    answer_id = int(rated.blocks[-1]["elements"][0]["positive_button"]["value"].split(":")[1])
    assert "hr/vacation.md" in bot.runtime.state.questions.source_paths(answer_id)

    # the thread's turn was given back: a follow-up there is answered
    follow_up = "and can I carry unused days over?"
    reply_ts = bot.slack.add_message(GENERAL, "U0ALICE", follow_up, thread_ts=ts)
    post_event(bot.url, event_body(message_event(GENERAL, "U0ALICE", follow_up, reply_ts, thread_ts=ts)))
    answers = bot.answer_in(GENERAL, ts, count=2, timeout=OUTAGE_TIMEOUT)
    assert "carry over" in answers[-1].text
    bot.wait_idle(timeout=OUTAGE_TIMEOUT)
    assert not _apologies(bot) and bot.runtime.state.questions.counts()["answers"] == 2


def test_a_follow_up_arriving_as_the_state_database_goes_down_is_answered_once_it_is_back(
    make_bot: Callable[..., Bot], postgres: RestartablePostgres
) -> None:
    """Whether a thread message is a follow-up is a state read (has the bot answered in this thread?):
    a message taken just as the outage begins waits for the database like the answer's own calls."""
    bot = make_bot(state_url=servers.new_database(postgres.url))
    bot.llm.push(answer(["Full-time employees get 25 days [1]."]), answer(["Unused days carry over, up to 5 [1]."]))
    ts, delivery = bot.ask(QUESTION)
    assert delivery.status == 200
    bot.answer_in(GENERAL, ts)
    bot.wait_idle()

    postgres.stop()
    follow_up = "and can I carry unused days over?"
    reply_ts = bot.slack.add_message(GENERAL, "U0ALICE", follow_up, thread_ts=ts)
    body = event_body(message_event(GENERAL, "U0ALICE", follow_up, reply_ts, thread_ts=ts))
    # taken whether or not the bot noticed the outage yet (Slack's last try is never refused)
    assert post_event(bot.url, body, retry_num=3).status == 200
    assert wait_for(lambda: _health(bot) == 503, "/healthz to say the database is down")
    # the database stays down until the listener is done with the event: a state call it made itself
    # would have given up by then (the pool's wait for a connection), and the follow-up been lost
    listeners = bot.runtime.workers.listeners
    assert wait_for(lambda: listeners.pending == 0, "the listener to be done with the follow-up")

    postgres.start()
    answers = bot.answer_in(GENERAL, ts, count=2, timeout=OUTAGE_TIMEOUT)
    assert "carry over" in answers[-1].text
    bot.wait_idle(timeout=OUTAGE_TIMEOUT)
    assert len(bot.slack.bot_messages(GENERAL, ts)) == 2 and len(bot.llm.bodies) == 2 and not _apologies(bot)


def test_socket_mode_leaves_an_event_unacked_while_the_state_database_is_down(
    make_bot: Callable[..., Bot], postgres: RestartablePostgres, caplog: pytest.LogCaptureFixture
) -> None:
    bot = make_bot(slack_app_token=APP_TOKEN, state_url=servers.new_database(postgres.url))
    bot.llm.push(answer(["Full-time employees get 25 days [1]."]))
    with FakeSocketMode() as socket_server, caplog.at_level(logging.INFO, logger="bot.bolt"):
        bot.slack.ws_url = socket_server.url
        handler = SocketModeHandler(bot.runtime.app, APP_TOKEN)
        handler.connect()
        try:
            postgres.stop()
            assert wait_for(lambda: _health(bot) == 503, "/healthz to say the database is down")
            ts = bot.slack.add_message(GENERAL, "U0ALICE", f"<@{BOT_USER}> {QUESTION}")
            body = event_body(mention_event(GENERAL, "U0ALICE", f"<@{BOT_USER}> {QUESTION}", ts))
            socket_server.send_event(body, envelope_id="env-1")

            def acked() -> bool:
                return any(a["envelope_id"] == "env-1" for a in socket_server.acks)

            # handled: acked, or (Bolt's adapter logs a response it does not send) left for Slack to send again
            wait_for(lambda: acked() or "status: 503" in caplog.text, "the Socket Mode adapter to handle the envelope")
            assert not acked()

            postgres.start()
            assert wait_for(lambda: _health(bot) == 200, "/healthz to say the database is back")
            socket_server.send_event(body, envelope_id="env-1", retry_attempt=1)
            socket_server.wait_ack("env-1")
            [message] = bot.answer_in(GENERAL, ts, timeout=OUTAGE_TIMEOUT)
            bot.wait_idle(timeout=OUTAGE_TIMEOUT)
        finally:
            handler.close()
    assert "25 days" in message.text and len(bot.llm.bodies) == 1 and not _apologies(bot)


def test_a_bot_stopped_while_the_state_database_is_down_tells_the_asker_to_ask_again(
    make_bot: Callable[..., Bot], postgres: RestartablePostgres, caplog: pytest.LogCaptureFixture
) -> None:
    bot = make_bot(state_url=servers.new_database(postgres.url), drain_seconds=1)
    postgres.stop()
    try:
        assert wait_for(lambda: _health(bot) == 503, "/healthz to say the database is down")
        ts = bot.slack.add_message(GENERAL, "U0ALICE", f"<@{BOT_USER}> {QUESTION}")
        body = event_body(mention_event(GENERAL, "U0ALICE", f"<@{BOT_USER}> {QUESTION}", ts))
        assert post_event(bot.url, body, retry_num=3).status == 200  # Slack's last try: taken, held
        with caplog.at_level(logging.ERROR, logger="bot.slack.answering"):
            bot.runtime.close()  # SIGTERM: the drain ends, the database still down
        [message] = _finished(bot, ts)
        assert "ask again" in message.text and not bot.llm.bodies
        assert f"the question in {GENERAL} (message {ts}) was not answered" in caplog.text
        assert QUESTION not in caplog.text
    finally:
        postgres.start()

"""Acks under load, over real HTTP with signed requests: a slash command, a 👎 click and a modal
submission are acked while every answer worker is busy on a stalled model, and `/qwenbot status`
spam while the model's GET /models hangs neither piles up checks nor delays anyone's question."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from support.fake_openai import FakeOpenAI, Responder, _Handler, answer
from support.fake_slack import (
    BOT_USER,
    Delivery,
    command_form,
    event_body,
    mention_event,
    post_event,
    post_form,
    post_interaction,
    view_submission_payload,
)
from support.slack_bot import GENERAL, QUESTION, VACATION_ANSWER, Bot, click

from bot.health import MODEL_CHECK_SECONDS
from bot.slack.listeners.commands import COMMANDS_PER_MINUTE
from bot.slack.render.feedback import ACTION_DOWN, FEEDBACK_VIEW, REASON_ACTION, REASON_BLOCK
from bot.slack.render.notices import BUSY
from bot.slack.workers import ANSWER_THREADS, Workers


def stalled(release: threading.Event, then: Responder) -> Responder:
    """The model takes the request and says nothing until `release` is set (or the server stops)."""

    def respond(h: _Handler, body: dict[str, Any]) -> None:
        while not release.wait(0.05):
            if h.fake.stopping.is_set():
                return
        then(h, body)

    return respond


class _HangingModels(_Handler):
    """GET /models hangs until the fake's `models_released` is set (each one is counted as it comes in
    `models_asked`); chat requests are answered."""

    def do_GET(self) -> None:
        fake: Any = self.fake
        if self.path.rstrip("/").endswith("/models"):
            fake.models_asked.append(self.path)
            while not fake.models_released.wait(0.05):
                if fake.stopping.is_set():
                    return
        super().do_GET()


@pytest.fixture
def hanging_models() -> Iterator[Callable[[FakeOpenAI], threading.Event]]:
    """Makes a FakeOpenAI's GET /models hang; returns the event that ends the hang (set at teardown)."""
    released: list[threading.Event] = []

    def hang(llm: FakeOpenAI) -> threading.Event:
        event = threading.Event()
        llm.models_released = event  # type: ignore[attr-defined]
        llm.models_asked = []  # type: ignore[attr-defined]
        llm._httpd.RequestHandlerClass = _HangingModels
        released.append(event)
        return event

    yield hang
    for event in released:
        event.set()


def _status(bot: Bot, user: str, name: str) -> Delivery:
    form = command_form("status", user=user, channel=GENERAL, response_url=bot.slack.response_url(name))
    return post_form(bot.url, form)


def _ask_in(bot: Bot, channels: list[str]) -> dict[str, str]:
    """A mention in each channel; returns channel: question ts."""
    asked = {}
    for i, channel in enumerate(channels):
        text = f"<@{BOT_USER}> {QUESTION}"
        asked[channel] = bot.slack.add_message(channel, f"U0USER{i:02d}", text)
        body = event_body(mention_event(channel, f"U0USER{i:02d}", text, asked[channel]))
        assert post_event(bot.url, body).status == 200
    return asked


def test_acks_and_the_reason_modal_come_at_once_while_every_answer_worker_is_busy(
    make_bot: Callable[..., Bot],
) -> None:
    bot = make_bot(feedback_style="buttons", rate_limit_per_minute=0)
    bot.llm.push(answer(VACATION_ANSWER))
    ts, _ = bot.ask(QUESTION)
    [rated] = bot.answer_in(GENERAL, ts)

    # more questions than answer workers, all stuck on a model that says nothing yet
    release = threading.Event()
    busy = ANSWER_THREADS + 2
    bot.llm.push(*[stalled(release, answer(VACATION_ANSWER)) for _ in range(busy)])
    asked = _ask_in(bot, [f"C0BUSY{i:02d}" for i in range(busy)])
    try:
        bot.slack.wait_for(lambda s: len(bot.llm.bodies) >= 1 + ANSWER_THREADS, timeout=120)

        # before: HTTP 404 {"error":"unhandled request"} after 3 s, for each of the three
        status = _status(bot, "U0ALICE", "status")
        assert status.status == 200, status
        [reply] = bot.slack.wait_for(lambda s: s.calls_to("response_url"), timeout=30)
        assert "qwenbot status" in reply.args["text"]

        clicked = click(bot, ACTION_DOWN, rated, "U0CAROL")
        assert clicked.status == 200, clicked
        # the modal opens while its trigger id is valid, not once an answer worker is free
        [opened] = bot.slack.wait_for(lambda s: s.calls_to("views.open"), timeout=30)
        view = opened.args["view"]
        view = json.loads(view) if isinstance(view, str) else view

        values = {REASON_BLOCK: {REASON_ACTION: {"type": "plain_text_input", "value": "outdated"}}}
        payload = view_submission_payload(FEEDBACK_VIEW, view["private_metadata"], values, user="U0CAROL")
        submitted = post_interaction(bot.url, payload)
        assert submitted.status == 200, submitted
        assert [f.reason for f in bot.runtime.state.feedback.records("down")] == ["outdated"]
        assert not release.is_set()
    finally:
        release.set()
    for channel, question_ts in asked.items():
        bot.answer_in(channel, question_ts, timeout=120)
    bot.wait_idle()


@pytest.mark.slow
def test_status_spam_while_the_model_list_hangs_runs_one_bounded_check_and_delays_no_question(
    make_bot: Callable[..., Bot],
    hanging_models: Callable[[FakeOpenAI], threading.Event],
) -> None:
    bot = make_bot(rate_limit_per_minute=0)
    hang = hanging_models(bot.llm)
    spam = 16
    deliveries: list[Delivery] = []
    senders = [
        threading.Thread(target=lambda i=i: deliveries.append(_status(bot, "U0MALLORY", f"spam{i}")))
        for i in range(spam)
    ]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join()
    assert [d.status for d in deliveries] == [200] * spam
    limited = [d for d in deliveries if d.body and "wait about" in json.loads(d.body)["text"]]
    assert len(limited) == spam - COMMANDS_PER_MINUTE  # before: none; each of the 16 ran a check

    # the next person's question is answered while GET /models still hangs
    bot.llm.push(answer(VACATION_ANSWER))
    ts, _ = bot.ask(QUESTION, user="U0BOB")
    [message] = bot.answer_in(GENERAL, ts, timeout=60)  # before: after the 16 checks' read timeouts
    assert message.text == "".join(VACATION_ANSWER)

    # the status replies say the model did not answer in time, from one check, while it still hangs
    replies = bot.slack.wait_for(
        lambda s: (found := s.calls_to("response_url")) and len(found) >= COMMANDS_PER_MINUTE and found,
        timeout=MODEL_CHECK_SECONDS + 30,
    )
    assert all(f"within {MODEL_CHECK_SECONDS:g}s" in r.args["text"] for r in replies), replies[0].args["text"]
    assert all(":x: degraded" in r.args["text"] for r in replies)
    assert len(bot.llm.models_asked) == 1  # type: ignore[attr-defined] # before: 16
    assert not hang.is_set()

    # once the hung check ends, the status report checks again
    hang.set()
    deadline = time.monotonic() + 60
    while "reachable" not in (report := bot.runtime.status_report()):
        assert time.monotonic() < deadline, report
        time.sleep(0.1)
    assert len(bot.llm.models_asked) == 2  # type: ignore[attr-defined]
    bot.wait_idle()


def test_past_the_waiting_limit_a_question_is_told_to_come_back(
    make_bot: Callable[..., Bot],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # one answer thread and one place in the queue: the third question at once is one too many
    monkeypatch.setattr("bot.runtime.Workers", lambda: Workers(answer_threads=1, waiting_limit=1))
    bot = make_bot(rate_limit_per_minute=0)
    release = threading.Event()
    bot.llm.push(*[stalled(release, answer(VACATION_ANSWER)) for _ in range(2)])
    try:
        asked = _ask_in(bot, ["C0FIRST", "C0SECOND", "C0THIRD"])
        [busy] = bot.slack.wait_for(lambda s: s.calls_to("chat.postEphemeral"), timeout=30)
        assert busy.args["text"] == BUSY
    finally:
        release.set()
    turned_away = busy.args["channel"]
    for channel, ts in asked.items():
        if channel != turned_away:
            bot.answer_in(channel, ts, timeout=60)
    bot.wait_idle()
    assert not bot.slack.bot_messages(turned_away) and len(bot.llm.bodies) == 2

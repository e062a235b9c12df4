"""The state database monitor and the event guard, with a database that fails on cue (the real
PostgreSQL outage end to end: tests/test_outage_state.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import psycopg
import pytest
from slack_bolt.request import BoltRequest
from slack_bolt.response import BoltResponse

from bot.slack import guard
from bot.slack.guard import StateGuard, StateMonitor, StateUnavailable
from bot.state.db import StateError


class Database:
    """Answers pings while `up` is set."""

    def __init__(self) -> None:
        self.up = threading.Event()
        self.up.set()
        self.pings = 0

    def ping(self) -> None:
        self.pings += 1
        if not self.up.is_set():
            raise StateError("the state database at postgresql://db/x is unreachable: connection refused")


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(guard, "RECHECK_SECONDS", 0.01)


def test_a_call_made_while_the_database_is_down_is_made_again_once_it_is_back() -> None:
    db = Database()
    monitor = StateMonitor(db.ping)
    calls: list[bool] = []

    def claim() -> str:
        calls.append(db.up.is_set())
        if not db.up.is_set():
            raise psycopg.OperationalError("couldn't get a connection after 10.00 sec")
        return "claimed"

    db.up.clear()
    result: list[str] = []
    held = threading.Thread(target=lambda: result.append(monitor.held(claim)))
    held.start()
    deadline = time.monotonic() + 30
    while not monitor.down:  # the call failed, and said so
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert held.is_alive() and calls == [False]
    db.up.set()
    held.join(timeout=30)
    assert result == ["claimed"] and calls == [False, True] and not monitor.down


def test_other_errors_are_raised_at_once_and_a_failure_the_pings_do_not_confirm_gives_up() -> None:
    db = Database()
    monitor = StateMonitor(db.ping)
    tries = 0

    def broken() -> None:
        nonlocal tries
        tries += 1
        raise psycopg.OperationalError("could not extend file: No space left on device")

    with pytest.raises(ValueError):
        monitor.held(lambda: int("not a number"))
    with pytest.raises(psycopg.OperationalError, match="No space left"):
        monitor.held(broken)
    assert tries == guard.MAX_TRIES


def test_closed_the_calls_held_while_down_give_up_and_the_others_go_on() -> None:
    db = Database()
    monitor = StateMonitor(db.ping)
    db.up.clear()
    monitor.check()
    outcome: list[BaseException] = []

    def hold() -> None:
        try:
            monitor.held(lambda: "never made")
        except StateUnavailable as exc:
            outcome.append(exc)

    held = threading.Thread(target=hold)
    held.start()
    monitor.close()
    held.join(timeout=30)
    assert outcome and not held.is_alive()
    db.up.set()
    assert monitor.check() and monitor.held(lambda: "made") == "made"


def _request(body: dict[str, Any], retry_num: int | None = None) -> BoltRequest:
    headers: dict[str, str | Sequence[str]] = {"x-slack-retry-num": str(retry_num)} if retry_num is not None else {}
    return BoltRequest(body=body, headers=headers, mode="socket_mode")


def test_the_guard_refuses_events_while_down_but_never_slacks_last_retry_nor_interactions() -> None:
    db = Database()
    monitor = StateMonitor(db.ping)
    middleware = StateGuard(monitor)
    passed: list[bool] = []

    def next_() -> BoltResponse:
        passed.append(True)
        return BoltResponse(status=200)

    def status(body: dict[str, Any], retry_num: int | None = None) -> int | None:
        passed.clear()
        response = middleware.process(req=_request(body, retry_num), resp=BoltResponse(status=200), next=next_)
        return None if passed else (response.status if response else None)

    event = {"type": "event_callback", "event_id": "Ev1", "event": {"type": "app_mention"}}
    assert status(event) is None  # up: on to the listeners
    db.up.clear()
    monitor.check()
    assert status(event) == 503 and status(event, retry_num=2) == 503
    assert status(event, retry_num=3) is None  # Slack's last try: taken (and held)
    assert status({"type": "block_actions", "actions": []}) is None
    db.up.set()
    monitor.check()
    assert status(event, retry_num=1) is None

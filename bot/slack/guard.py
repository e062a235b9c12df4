"""No question is lost while the state database (PostgreSQL, `QWENBOT_STATE_URL`) is unreachable.

Nothing can be claimed then, and Slack never delivers again an event the bot acked. So:
- `StateGuard` refuses the events that arrive while the database is known to be down (HTTP 503; in
  Socket Mode the envelope is not acked): Slack delivers them again later (X-Slack-Retry-Num 1 to 3,
  about 1 and 5 minutes apart). Slack's last retry is taken anyway, and held as below.
- An event acked before the outage was noticed, or a question being answered when it began, is held
  in memory: each state call waits until the database answers again and is then made again
  (`StateMonitor.held`), so the question is answered once the database is back.

`StateMonitor` knows whether the database is down at no cost per event: from the calls that failed,
the health checks, and (shared state) a ping every WATCH_SECONDS; while it is down, a ping every
RECHECK_SECONDS tells when it is back.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import psycopg
from slack_bolt.middleware import Middleware
from slack_bolt.request import BoltRequest
from slack_bolt.response import BoltResponse

from bot.errors import QwenbotError
from bot.state.db import StateError
from bot.text import short

log = logging.getLogger(__name__)

T = TypeVar("T")

RECHECK_SECONDS = 1.0  # while the database is down: a ping this often, until one answers
WATCH_SECONDS = 2.0  # shared state: a ping this often while it is up, so an outage is noticed between events
LAST_SLACK_RETRY = 3  # Slack delivers an event again 3 times at most: the last delivery is never refused
MAX_TRIES = 10  # a call failing this often while the database answers pings is not an outage: it fails


def unreachable(exc: BaseException) -> bool:
    """Whether `exc` says the state database could not be reached (connection refused or lost, no
    connection from the pool in time), as opposed to a statement that failed."""
    return isinstance(exc, (StateError, psycopg.OperationalError, psycopg.InterfaceError))


class StateUnavailable(QwenbotError):
    """The bot is stopping while the state database is still unreachable: the call was not made."""


class StateMonitor:
    """Whether the state database is down; thread-safe. `ping` raises when it does not answer.
    `watch`: ping it every WATCH_SECONDS while it is up too (else only failures say it is down)."""

    def __init__(self, ping: Callable[[], None], *, watch: bool = False) -> None:
        self._ping = ping
        self._watch = watch
        self._changed = threading.Condition()
        self._down_since: float | None = None
        self._up_since = float("-inf")  # never down so far
        self._closed = False
        self._pinger: threading.Thread | None = None
        if watch:
            self._start_pinger()

    @property
    def down(self) -> bool:
        return self._down_since is not None

    def up_for(self) -> float:
        """Seconds since the database came back from its last outage (infinite: none so far; 0: down)."""
        with self._changed:
            return 0.0 if self.down else time.monotonic() - self._up_since

    def check(self) -> bool:
        """Pings the database now; True when it answers."""
        try:
            self._ping()
        except Exception as exc:
            self.failed(exc)
            return False
        self._recovered()
        return True

    def failed(self, exc: BaseException) -> None:
        """A call found the database unreachable: it is down until a ping answers."""
        with self._changed:
            if self.down:
                return
            self._down_since = time.monotonic()
            self._start_pinger()
        log.warning(
            "the state database is unreachable (%s): events are refused (Slack delivers them again) and the "
            "questions in progress wait until it is back",
            short(str(exc), 200),
        )

    def _recovered(self) -> None:
        with self._changed:
            if self._down_since is None:
                return
            outage = time.monotonic() - self._down_since
            self._down_since = None
            self._up_since = time.monotonic()
            self._changed.notify_all()
        log.warning("the state database is back after %.0f s: the questions held meanwhile are answered now", outage)

    def wait_up(self) -> bool:
        """Waits while the database is down; False when the monitor was closed first."""
        with self._changed:
            self._changed.wait_for(lambda: self._closed or not self.down)
            return not self.down

    def held(self, call: Callable[[], T]) -> T:
        """`call()`. When the database is unreachable, waits until it is back and calls again, for as
        long as it takes (each state call is its own transaction: one that failed did nothing). Raises
        StateUnavailable when the bot stops first, and any other error as it is."""
        tries = 0
        while True:
            # known to be down: no call that would only wait out the pool's timeout
            if not self.wait_up():
                raise StateUnavailable("the bot stopped while the state database was unreachable")
            try:
                return call()
            except Exception as exc:
                tries += 1
                if not unreachable(exc) or tries >= MAX_TRIES:
                    raise
                self.failed(exc)

    def close(self) -> None:
        """Ends the waits: calls held while the database is down raise StateUnavailable (and so does
        any call that finds it down from now on). For the end of the shutdown drain."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def _start_pinger(self) -> None:
        # called holding the lock: one pinger at a time, running while watching or down
        if self._pinger is None and not self._closed:
            self._pinger = threading.Thread(target=self._pings, name="qwenbot-state-monitor", daemon=True)
            self._pinger.start()

    def _pings(self) -> None:
        while True:
            with self._changed:
                if not self._closed and (self.down or self._watch):
                    self._changed.wait(RECHECK_SECONDS if self.down else WATCH_SECONDS)
                if self._closed or not (self.down or self._watch):
                    self._pinger = None
                    return
            self.check()


class StateGuard(Middleware):
    """Bolt middleware: refuses Events API deliveries while the state database is down, so that Slack
    delivers them again (HTTP: 503; Socket Mode: Bolt's adapter acks no envelope that got another
    status than 200). Interactions and commands pass: Slack does not deliver those again."""

    def __init__(self, monitor: StateMonitor) -> None:
        self.monitor = monitor

    def process(self, *, req: BoltRequest, resp: BoltResponse, next: Callable[[], BoltResponse]) -> BoltResponse | None:
        if req.body.get("type") == "event_callback" and self.monitor.down and _retry_num(req) < LAST_SLACK_RETRY:
            log.info("event refused while the state database is unreachable: Slack delivers it again")
            return BoltResponse(status=503, body="the bot's state database is unreachable: deliver again later")
        return next()


def _retry_num(req: BoltRequest) -> int:
    value = (req.headers.get("x-slack-retry-num") or ["0"])[0]
    return int(value) if value.isdigit() else 0

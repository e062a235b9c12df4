"""Threads: one answer at a time per thread across replicas (turns, leased like claims), and the
channel the user of an assistant thread is viewing."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from bot.state.db import Database

TURN_POLL = 0.2  # seconds between looks at a thread's queue held by other replicas


class Threads:
    """`owner` and `lease_seconds`: those of this replica's claims (bot/state/claims.py renews the turns)."""

    def __init__(self, db: Database, owner: str, lease_seconds: float) -> None:
        self._db = db
        self._owner = owner
        self._lease_seconds = lease_seconds
        self._turns_changed = threading.Condition()

    @contextmanager
    def turn(self, channel: str, thread_ts: str, message_ts: str) -> Iterator[None]:
        """One answer at a time per thread, across replicas, in the order of the questions' messages:
        a follow-up sent while an answer is being written waits for it (and then has it in the
        thread's history). The turn is leased like a claim, so a dead replica's turn runs out."""
        self._db.execute(
            "INSERT INTO thread_turns (channel, thread_ts, message_ts, owner, lease_until) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (channel, thread_ts, message_ts) DO UPDATE SET owner = excluded.owner, "
            "lease_until = excluded.lease_until",
            (channel, thread_ts, message_ts, self._owner, time.time() + self._lease_seconds),
        )
        try:
            with self._turns_changed:
                # woken at once when a turn ends in this process; other replicas' turns are polled
                while self._first_in_thread(channel, thread_ts) != message_ts:
                    self._turns_changed.wait(TURN_POLL)
            yield
        finally:
            self._db.execute(
                "DELETE FROM thread_turns WHERE channel = ? AND thread_ts = ? AND message_ts = ? AND owner = ?",
                (channel, thread_ts, message_ts, self._owner),
            )
            with self._turns_changed:
                self._turns_changed.notify_all()

    def _first_in_thread(self, channel: str, thread_ts: str) -> str | None:
        rows = self._db.fetch(
            "SELECT MIN(message_ts) FROM thread_turns WHERE channel = ? AND thread_ts = ? "
            "AND (lease_until >= ? OR owner = ?)",  # a turn of a dead replica runs out; this one's never do
            (channel, thread_ts, time.time(), self._owner),
        )
        first = rows[0][0]
        return None if first is None else str(first)

    def set_context(self, channel: str, thread_ts: str, context_channel: str | None) -> None:
        """Remembers an assistant thread and the channel its user is viewing ("" for none)."""
        self._db.execute(
            "INSERT INTO assistant_threads (channel, thread_ts, context_channel, updated) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (channel, thread_ts) DO UPDATE SET context_channel = excluded.context_channel, "
            "updated = excluded.updated",
            (channel, thread_ts, context_channel or "", time.time()),
        )

    def context(self, channel: str, thread_ts: str) -> str | None:
        """For an assistant thread, the channel its user is viewing ("" when none); None for any other thread."""
        rows = self._db.fetch(
            "SELECT context_channel FROM assistant_threads WHERE channel = ? AND thread_ts = ?", (channel, thread_ts)
        )
        return str(rows[0][0]) if rows else None

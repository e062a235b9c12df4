"""Replicas sharing one state: each renews the leases of the answers it has in progress, and answers
the questions of a replica that died mid-answer (its leases ran out), once."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from bot.slack.guard import StateMonitor, unreachable
from bot.slack.workers import Workers
from bot.state import State
from bot.state.claims import Lease

log = logging.getLogger(__name__)


class LeaseKeeper:
    """Renews this replica's answer leases every third of a lease, on a thread of its own, until
    `stop()`; takes over abandoned ones while the bot is not `closing`."""

    def __init__(
        self,
        state: State,
        monitor: StateMonitor,
        workers: Workers,
        resume: Callable[[Lease], None],
        closing: threading.Event,
    ) -> None:
        self.state = state
        self.monitor = monitor
        self.workers = workers
        self.resume = resume
        self.closing = closing
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="qwenbot-leases", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.state.claims.lease_seconds / 3):
            try:
                self.renew()
            except Exception as exc:
                if not unreachable(exc):
                    log.exception("renewing the answer leases failed")
                self.monitor.failed(exc)  # an outage: said once, not a traceback every few seconds

    def renew(self) -> None:
        self.state.claims.renew_leases()
        # After an outage of the state database, every replica's leases may have run out meanwhile:
        # the others get a whole lease to renew theirs before any is taken over.
        if not self.closing.is_set() and self.monitor.up_for() >= self.state.claims.lease_seconds:
            for lease in self.state.claims.take_abandoned():
                self.workers.submit(self.resume, lease)

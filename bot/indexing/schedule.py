"""Scheduled re-indexing: every QWENBOT_REINDEX_INTERVAL_MINUTES, by one replica per cycle."""

from __future__ import annotations

import threading
import time

from bot.indexing.service import IndexService


def reindex_on_schedule(service: IndexService, interval_minutes: float, stop: threading.Event) -> None:
    """Re-indexes at each cycle until `stop` is set. Cycles are aligned to the clock, so replicas
    sharing the state agree on which cycle a run is; the first to claim a cycle runs it (the index
    lock then keeps a slow run out of the next)."""
    interval = interval_minutes * 60
    while not stop.wait(interval - time.time() % interval):
        cycle = round(time.time() / interval)
        if service.state.claims.claim(f"reindex:{cycle}"):
            service.reindex_alone(f"scheduled, cycle {cycle}")

"""Per-user rate limits, counted across the replicas that share the state."""

from __future__ import annotations

import time

from bot.state.db import Database


class Limits:
    def __init__(self, db: Database) -> None:
        self._db = db

    def rate_check(self, user: str, per_window: int, window_seconds: float, now: float | None = None) -> float:
        """0 if `user` may ask now (and counts it): fewer than `per_window` questions in the last
        `window_seconds`, counted across replicas. Else the seconds until they may."""
        now = time.time() if now is None else now
        with self._db.transaction(lock=f"rate:{user}") as tx:
            tx.execute("DELETE FROM rate_hits WHERE user_id = ? AND at <= ?", (user, now - window_seconds))
            count, oldest = tx.fetch("SELECT COUNT(*), MIN(at) FROM rate_hits WHERE user_id = ?", (user,))[0]
            if count >= per_window:
                return float(oldest) + window_seconds - now
            tx.execute("INSERT INTO rate_hits (user_id, at) VALUES (?, ?)", (user, now))
            return 0.0

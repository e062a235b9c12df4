"""Claims: each delivery handled once (a dedupe row per key, with a TTL, surviving restarts), and
leases on the work in progress.

Leases: an answer in progress holds a lease on its message's claim (QWENBOT_CLAIM_LEASE_SECONDS),
renewed by its replica while it works. A replica that dies stops renewing; once the lease runs out,
another replica takes the question over (`take_abandoned`) and answers it, saying so.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from bot.state.db import Database

MAX_CLAIMS = 100_000  # dedupe rows kept at most, however busy the bot: the oldest go first
PURGE_INTERVAL = 600.0  # seconds between sweeps of expired dedupe rows (or the TTL, if shorter)
LEASE_SECONDS = 30.0  # an answer in progress whose replica stopped renewing is taken over after this


@dataclass(frozen=True)
class Lease:
    """Work this replica now owns: a question to answer. `resumed`: another replica held it before
    and stopped renewing its lease (it died mid-answer)."""

    key: str
    payload: str
    resumed: bool


class Claims:
    """`owner`: this process, in the leases it holds (its claims' and its thread turns')."""

    def __init__(self, db: Database, owner: str, ttl_seconds: float, max_claims: int, lease_seconds: float) -> None:
        self._db = db
        self.owner = owner
        self.ttl_seconds = ttl_seconds
        self.max_claims = max_claims
        self.lease_seconds = lease_seconds
        self._purge_interval = min(PURGE_INTERVAL, ttl_seconds)
        self._next_purge = 0.0

    def claim(self, key: str, now: float | None = None) -> bool:
        """True the first time `key` is seen within the TTL (this delivery should be handled)."""
        now = self._maybe_purge(now)
        with self._db.transaction() as tx:
            tx.execute("DELETE FROM claims WHERE key = ? AND created < ?", (key, now - self.ttl_seconds))
            # the check and the insert are one statement: two replicas can never both win
            return tx.execute("INSERT INTO claims (key, created) VALUES (?, ?) ON CONFLICT DO NOTHING", (key, now)) == 1

    def claim_lease(self, key: str, payload: str, now: float | None = None) -> Lease | None:
        """Claims `key` as work in progress, leased to this replica: `payload` says what the work is,
        so another replica can do it if this one dies. None when the key is taken (and its lease, if
        any, is still running). End it with `finish` (done) or `release` (not done)."""
        now = self._maybe_purge(now)
        with self._db.transaction() as tx:
            tx.execute("DELETE FROM claims WHERE key = ? AND created < ?", (key, now - self.ttl_seconds))
            rows = tx.fetch(
                "INSERT INTO claims (key, created, owner, lease_until, payload) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET owner = excluded.owner, lease_until = excluded.lease_until, "
                "takeovers = claims.takeovers + 1 WHERE claims.lease_until < ? RETURNING takeovers, payload",
                (key, now, self.owner, now + self.lease_seconds, payload, now),
            )
        return Lease(key, rows[0][1], resumed=rows[0][0] > 0) if rows else None

    def take_abandoned(self, limit: int = 10, now: float | None = None) -> list[Lease]:
        """Leases that ran out (their replica died mid-work), now this replica's: at most `limit`."""
        now = time.time() if now is None else now
        rows = self._db.fetch(
            "UPDATE claims SET owner = ?, lease_until = ?, takeovers = takeovers + 1 "
            "WHERE lease_until < ? AND key IN "
            "(SELECT key FROM claims WHERE lease_until < ? ORDER BY lease_until LIMIT ?) "
            "RETURNING key, payload",
            (self.owner, now + self.lease_seconds, now, now, limit),
        )
        return [Lease(key, payload, resumed=True) for key, payload in rows]

    def renew_leases(self, now: float | None = None) -> None:
        """Extends every lease this replica holds (its claims' and its thread turns', bot/state/threads.py);
        call it more often than `lease_seconds`."""
        until = (time.time() if now is None else now) + self.lease_seconds
        with self._db.transaction() as tx:
            tx.execute(
                "UPDATE claims SET lease_until = ? WHERE owner = ? AND lease_until IS NOT NULL", (until, self.owner)
            )
            tx.execute("UPDATE thread_turns SET lease_until = ? WHERE owner = ?", (until, self.owner))

    def finish(self, key: str) -> None:
        """The leased work is done: the lease ends, the claim stays (a redelivery is a duplicate)."""
        self._db.execute(
            "UPDATE claims SET lease_until = NULL, payload = NULL WHERE key = ? AND owner = ?", (key, self.owner)
        )

    def release(self, key: str) -> None:
        """Forget a claim: the work it stood for was not done, so a redelivery should do it."""
        self._db.execute("DELETE FROM claims WHERE key = ?", (key,))

    def count(self) -> int:
        return int(self._db.fetch("SELECT COUNT(*) FROM claims")[0][0])

    def purge_expired(self, now: float | None = None) -> int:
        """Drops expired dedupe rows, then the oldest beyond `max_claims`. Returns how many went. The
        one sweep of rows that expire: the turns of dead replicas and old rate hits go too."""
        now = time.time() if now is None else now
        self._next_purge = now + self._purge_interval
        with self._db.transaction() as tx:
            gone = tx.execute("DELETE FROM claims WHERE created < ?", (now - self.ttl_seconds,))
            gone += tx.execute(
                "DELETE FROM claims WHERE created < "
                "(SELECT created FROM claims ORDER BY created DESC LIMIT 1 OFFSET ?)",
                (self.max_claims - 1,),
            )
            # turns of dead replicas and rate hits of people who have not asked since
            tx.execute("DELETE FROM thread_turns WHERE lease_until < ?", (now - self.lease_seconds,))
            tx.execute("DELETE FROM rate_hits WHERE at < ?", (now - self.ttl_seconds,))
        return gone

    def _maybe_purge(self, now: float | None) -> float:
        now = time.time() if now is None else now
        if now >= self._next_purge:  # a long-running bot must not grow the table forever
            self.purge_expired(now)
        return now

"""The bot's own state, one part per concern, each its own module:

- `claims`: each delivery handled once (a TTL, surviving restarts) and leases on answers in progress
- `threads`: one answer at a time per thread, across replicas; the channel an assistant thread views
- `limits`: per-user rate limits
- `questions`: the questions answered, with their answers and sources, and which may be suggested
- `feedback`: the ratings given and their reasons
- `gaps`: the knowledge-gap report's questions and the digest's groups
- `knowledge`: threads escalated to experts, and the learned answers saved from them
- `sources`: the sources' sync state (cursors, mirrored documents) and each source's sync status

In a SQLite file by default; in PostgreSQL (`QWENBOT_STATE_URL`) when several bot replicas share it.
The SQL is the same on both (bot/state/db.py holds the difference; bot/state/migrations.py the schema).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bot.config import StateConfig
from bot.state.claims import LEASE_SECONDS, MAX_CLAIMS, Claims
from bot.state.db import Database, open_database
from bot.state.feedback import Feedback
from bot.state.gaps import Gaps
from bot.state.knowledge import Knowledge
from bot.state.limits import Limits
from bot.state.migrations import MIGRATIONS
from bot.state.questions import Questions
from bot.state.sources import Sources
from bot.state.threads import Threads


class State:
    """The state database, opened once, and its parts. Thread-safe; every method of a part is its own
    short transaction. `location`: a SQLite file path, or a `postgresql://` URL."""

    def __init__(
        self,
        location: Path | str,
        dedupe_ttl_hours: float = 24.0,
        *,
        max_claims: int = MAX_CLAIMS,
        lease_seconds: float = LEASE_SECONDS,
        pool_size: int = 10,
    ) -> None:
        owner = uuid.uuid4().hex  # this process, in the leases it holds
        self._db: Database = open_database(location, pool_size)
        self.claims = Claims(self._db, owner, dedupe_ttl_hours * 3600, max_claims, lease_seconds)
        self.threads = Threads(self._db, owner, lease_seconds)
        self.limits = Limits(self._db)
        self.questions = Questions(self._db)
        self.feedback = Feedback(self._db, self.questions)
        self.gaps = Gaps(self._db)
        self.knowledge = Knowledge(self._db)
        self.sources = Sources(self._db)
        try:
            self._db.migrate(MIGRATIONS)
            self.claims.purge_expired()
        except BaseException:
            self._db.close()
            raise

    @staticmethod
    def missing(config: StateConfig) -> str | None:
        """Why there is no state to read yet (a SQLite file the bot has not written), or None."""
        if config.state_url is None and not config.state_db.exists():
            return f"no bot state at {config.state_db} (QWENBOT_STATE_DB); the bot writes it when it answers in Slack"
        return None

    @classmethod
    def from_config(cls, config: StateConfig) -> State:
        return cls(
            config.state_url.get_secret_value() if config.state_url else config.state_db,
            config.dedupe_ttl_hours,
            lease_seconds=config.claim_lease_seconds,
            pool_size=config.state_pool_size,
        )

    @property
    def where(self) -> str:
        """The database, for status lines (never a password)."""
        return self._db.where

    @property
    def shared(self) -> bool:
        """Whether other processes (bot replicas) may share this state."""
        return self._db.dialect == "postgresql"

    def close(self) -> None:
        self._db.close()

    def ping(self) -> None:
        """Raises bot.state.db.StateError when the database does not answer."""
        self._db.ping()

    @contextmanager
    def exclusive(self, name: str) -> Iterator[bool]:
        """Yields True while this process alone holds the lock `name` (e.g. "reindex"), False at once
        when another process holds it. A replica that dies releases it."""
        with self._db.try_lock(name) as held:
            yield held

"""The bot's own state: delivery claims (exactly once, with a TTL, surviving restarts), leases on
answers in progress, per-thread turns, per-user rate limits, the questions it answered with their
answers and sources, and the feedback people gave.

In a SQLite file by default; in PostgreSQL (`QWENBOT_STATE_URL`) when several bot replicas share it.
The SQL is the same on both (bot/db.py holds the difference).

Leases: an answer in progress holds a lease on its message's claim (QWENBOT_CLAIM_LEASE_SECONDS),
renewed by its replica while it works. A replica that dies stops renewing; once the lease runs out,
another replica takes the question over (`take_abandoned`) and answers it, saying so.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bot.db import Database, open_database

if TYPE_CHECKING:
    from bot.answer.records import Answer
    from bot.settings import GapsInclude, Settings

# Applied in order, each once (bot/db.py); never edit one that has shipped: add the next.
# {id} and {real} are the column types that differ between SQLite and PostgreSQL.
MIGRATIONS = [
    # 1: the schema of the SQLite-only bot (files written by it are at version 1, so this is idempotent)
    """
CREATE TABLE IF NOT EXISTS claims (
    key TEXT PRIMARY KEY,
    created {real} NOT NULL
);
CREATE TABLE IF NOT EXISTS questions (
    id {id},
    event_id TEXT,
    channel TEXT NOT NULL,
    thread_ts TEXT NOT NULL,
    message_ts TEXT NOT NULL,
    "user" TEXT NOT NULL,
    text TEXT NOT NULL,
    created {real} NOT NULL
);
CREATE INDEX IF NOT EXISTS questions_thread ON questions (channel, thread_ts);
CREATE TABLE IF NOT EXISTS answers (
    id {id},
    question_id BIGINT NOT NULL REFERENCES questions (id),
    text TEXT NOT NULL,
    mode TEXT NOT NULL,
    model_error TEXT,
    message_ts TEXT,
    timings TEXT NOT NULL DEFAULT '{{}}',
    created {real} NOT NULL
);
CREATE TABLE IF NOT EXISTS sources (
    answer_id BIGINT NOT NULL REFERENCES answers (id),
    n INTEGER NOT NULL,
    title TEXT NOT NULL,
    path TEXT NOT NULL,
    heading_path TEXT NOT NULL,
    url TEXT,
    updated TEXT,
    score {real} NOT NULL
);
CREATE TABLE IF NOT EXISTS feedback (
    answer_id BIGINT NOT NULL REFERENCES answers (id),
    "user" TEXT NOT NULL,
    rating TEXT NOT NULL CHECK (rating IN ('up', 'down')),
    reason TEXT,
    created {real} NOT NULL,
    PRIMARY KEY (answer_id, "user")
)
""",
    # 2: shared state for replicas. `user` is a reserved word in PostgreSQL: the columns become user_id.
    """
ALTER TABLE questions RENAME COLUMN "user" TO user_id;
ALTER TABLE feedback RENAME COLUMN "user" TO user_id;
ALTER TABLE claims ADD COLUMN owner TEXT;
ALTER TABLE claims ADD COLUMN lease_until {real};
ALTER TABLE claims ADD COLUMN payload TEXT;
ALTER TABLE claims ADD COLUMN takeovers INTEGER NOT NULL DEFAULT 0;
CREATE INDEX claims_created ON claims (created);
CREATE INDEX claims_lease ON claims (lease_until);
CREATE TABLE thread_turns (
    channel TEXT NOT NULL,
    thread_ts TEXT NOT NULL,
    message_ts TEXT NOT NULL,
    owner TEXT NOT NULL,
    lease_until {real} NOT NULL,
    PRIMARY KEY (channel, thread_ts, message_ts)
);
CREATE TABLE rate_hits (
    user_id TEXT NOT NULL,
    at {real} NOT NULL
);
CREATE INDEX rate_hits_user ON rate_hits (user_id, at)
""",
    # 3: assistant threads (the channel the user is viewing picks the doc scope) and the knowledge-gap
    # digest's groups of questions, which a doc owner marks as handled
    """
CREATE TABLE assistant_threads (
    channel TEXT NOT NULL,
    thread_ts TEXT NOT NULL,
    context_channel TEXT NOT NULL DEFAULT '',
    updated {real} NOT NULL,
    PRIMARY KEY (channel, thread_ts)
);
CREATE TABLE gap_groups (
    id {id},
    created {real} NOT NULL,
    handled_by TEXT,
    handled {real}
);
CREATE TABLE gap_group_questions (
    group_id BIGINT NOT NULL REFERENCES gap_groups (id),
    question_id BIGINT NOT NULL REFERENCES questions (id),
    PRIMARY KEY (group_id, question_id)
);
CREATE INDEX questions_created ON questions (created)
""",
    # 4: the kind of conversation each question was asked in (Slack's channel_type: channel = public,
    # group = private, mpim, im), copied from what the channel's message events last said; NULL (the
    # rows before this, or a channel not heard from yet) counts as not public
    """
ALTER TABLE questions ADD COLUMN channel_type TEXT;
CREATE TABLE channel_types (
    channel TEXT PRIMARY KEY,
    channel_type TEXT NOT NULL,
    updated {real} NOT NULL
)
""",
]

# Which questions the knowledge-gap report shows (QWENBOT_GAPS_INCLUDE): public channels only; every
# channel (private ones and group DMs too, and channels of unknown kind); or everything, DMs included
_INCLUDE = {
    "public": "q.channel_type = 'channel'",
    "channels": "SUBSTR(q.channel, 1, 1) <> 'D' AND COALESCE(q.channel_type, '') <> 'im'",
    "all": "1 = 1",
}


@dataclass(frozen=True)
class FeedbackRecord:
    answer_id: int
    user: str
    rating: str
    reason: str | None
    question: str
    answer: str
    mode: str
    channel: str
    source_paths: list[str]
    created: float


@dataclass(frozen=True)
class UnansweredQuestion:
    """A question the docs did not answer (`not_found`) or whose answer was rated 👎."""

    question_id: int
    text: str
    channel: str
    created: float
    not_found: bool
    rated_down: bool
    reasons: tuple[str, ...]  # the 👎 reasons given
    channel_type: str | None = None  # Slack's channel_type where it was asked; None: not known


@dataclass(frozen=True)
class QuestionPool:
    """The questions that may be suggested to someone: every question asked in `channel` (the one they
    are viewing; never a DM's), and those asked in public channels among `public_in`, or, when
    `public_outside` is given, in any public channel not in it (the scopes file's default scope)."""

    channel: str | None = None
    public_in: tuple[str, ...] = ()
    public_outside: tuple[str, ...] | None = None

    def condition(self) -> tuple[str, list[str]]:
        """A WHERE condition on `q` (questions) and its parameters; "" when the pool is empty."""
        parts, params = [], []
        if self.channel and not self.channel.startswith("D"):
            parts.append("q.channel = ?")
            params.append(self.channel)
        if self.public_in:
            parts.append(f"(q.channel_type = 'channel' AND q.channel IN ({', '.join('?' * len(self.public_in))}))")
            params.extend(self.public_in)
        if self.public_outside is not None:
            outside = self.public_outside
            parts.append(
                "(q.channel_type = 'channel'"
                + (f" AND q.channel NOT IN ({', '.join('?' * len(outside))}))" if outside else ")")
            )
            params.extend(outside)
        return " OR ".join(parts), params


@dataclass(frozen=True)
class AskedQuestion:
    """The question an answer answered, and where it was asked."""

    question_id: int
    text: str
    channel: str
    thread_ts: str
    mode: str


@dataclass(frozen=True)
class Lease:
    """Work this replica now owns: a question to answer. `resumed`: another replica held it before
    and stopped renewing its lease (it died mid-answer)."""

    key: str
    payload: str
    resumed: bool


MAX_CLAIMS = 100_000  # dedupe rows kept at most, however busy the bot: the oldest go first
PURGE_INTERVAL = 600.0  # seconds between sweeps of expired dedupe rows (or the TTL, if shorter)
LEASE_SECONDS = 30.0  # an answer in progress whose replica stopped renewing is taken over after this
TURN_POLL = 0.2  # seconds between looks at a thread's queue held by other replicas


class State:
    """Thread-safe; every method is its own short transaction. `location`: a SQLite file path, or a
    `postgresql://` URL."""

    def __init__(
        self,
        location: Path | str,
        dedupe_ttl_hours: float = 24.0,
        *,
        max_claims: int = MAX_CLAIMS,
        lease_seconds: float = LEASE_SECONDS,
        pool_size: int = 10,
    ) -> None:
        self.ttl_seconds = dedupe_ttl_hours * 3600
        self.max_claims = max_claims
        self.lease_seconds = lease_seconds
        self.owner = uuid.uuid4().hex  # this process, in the leases it holds
        self._purge_interval = min(PURGE_INTERVAL, self.ttl_seconds)
        self._next_purge = 0.0
        self._turns_changed = threading.Condition()
        self._channel_types: dict[str, str] = {}  # what this process last wrote to channel_types
        self._db: Database = open_database(location, pool_size)
        try:
            self._db.migrate(MIGRATIONS)
            self.purge_expired()
        except BaseException:
            self._db.close()
            raise

    @staticmethod
    def missing(settings: Settings) -> str | None:
        """Why there is no state to read yet (a SQLite file the bot has not written), or None."""
        if settings.state_url is None and not settings.state_db.exists():
            return f"no bot state at {settings.state_db} (QWENBOT_STATE_DB); the bot writes it when it answers in Slack"
        return None

    @classmethod
    def from_settings(cls, settings: Settings) -> State:
        return cls(
            settings.state_url.get_secret_value() if settings.state_url else settings.state_db,
            settings.dedupe_ttl_hours,
            lease_seconds=settings.claim_lease_seconds,
            pool_size=settings.state_pool_size,
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
        """Raises bot.db.StateError when the database does not answer."""
        self._db.ping()

    # --- claims: each delivery handled once ---
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
        """Extends every lease this replica holds; call it more often than `lease_seconds`."""
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

    def purge_expired(self, now: float | None = None) -> int:
        """Drops expired dedupe rows, then the oldest beyond `max_claims`. Returns how many went."""
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

    def release(self, key: str) -> None:
        """Forget a claim: the work it stood for was not done, so a redelivery should do it."""
        self._db.execute("DELETE FROM claims WHERE key = ?", (key,))

    def claim_count(self) -> int:
        return int(self._db.fetch("SELECT COUNT(*) FROM claims")[0][0])

    # --- coordination between replicas ---
    @contextmanager
    def thread_turn(self, channel: str, thread_ts: str, message_ts: str) -> Iterator[None]:
        """One answer at a time per thread, across replicas, in the order of the questions' messages:
        a follow-up sent while an answer is being written waits for it (and then has it in the
        thread's history). The turn is leased like a claim, so a dead replica's turn runs out."""
        self._db.execute(
            "INSERT INTO thread_turns (channel, thread_ts, message_ts, owner, lease_until) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (channel, thread_ts, message_ts) DO UPDATE SET owner = excluded.owner, "
            "lease_until = excluded.lease_until",
            (channel, thread_ts, message_ts, self.owner, time.time() + self.lease_seconds),
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
                (channel, thread_ts, message_ts, self.owner),
            )
            with self._turns_changed:
                self._turns_changed.notify_all()

    def _first_in_thread(self, channel: str, thread_ts: str) -> str | None:
        rows = self._db.fetch(
            "SELECT MIN(message_ts) FROM thread_turns WHERE channel = ? AND thread_ts = ? "
            "AND (lease_until >= ? OR owner = ?)",  # a turn of a dead replica runs out; this one's never do
            (channel, thread_ts, time.time(), self.owner),
        )
        return rows[0][0]

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

    @contextmanager
    def exclusive(self, name: str) -> Iterator[bool]:
        """Yields True while this process alone holds the lock `name` (e.g. "reindex"), False at once
        when another process holds it. A replica that dies releases it."""
        with self._db.try_lock(name) as held:
            yield held

    # --- questions, answers, feedback ---
    def note_channel_type(self, channel: str, channel_type: str) -> None:
        """Remembers what kind of conversation `channel` is (Slack's `channel_type` from its message
        events: `app_mention` does not say); questions recorded there from now on carry it."""
        if self._channel_types.get(channel) == channel_type:
            return  # written once per channel (and per change) by each process, not per message
        self._db.execute(
            "INSERT INTO channel_types (channel, channel_type, updated) VALUES (?, ?, ?) ON CONFLICT (channel) "
            "DO UPDATE SET channel_type = excluded.channel_type, updated = excluded.updated",
            (channel, channel_type, time.time()),
        )
        self._channel_types[channel] = channel_type

    def add_question(
        self, *, event_id: str | None, channel: str, thread_ts: str, message_ts: str, user: str, text: str
    ) -> int:
        rows = self._db.fetch(
            "INSERT INTO questions (event_id, channel, thread_ts, message_ts, user_id, text, created, channel_type) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, (SELECT channel_type FROM channel_types WHERE channel = ?)) RETURNING id",
            (event_id, channel, thread_ts, message_ts, user, text, time.time(), channel),
        )
        return int(rows[0][0])

    def add_answer(self, question_id: int, answer: Answer) -> int:
        """Store the answer and its sources; the id goes into the feedback buttons."""
        with self._db.transaction() as tx:
            answer_id = int(
                tx.fetch(
                    "INSERT INTO answers (question_id, text, mode, model_error, timings, created) "
                    "VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                    (
                        question_id,
                        answer.text,
                        answer.mode,
                        answer.model_error,
                        json.dumps(answer.timings),
                        time.time(),
                    ),
                )[0][0]
            )
            if answer.sources:
                tx.executemany(
                    "INSERT INTO sources (answer_id, n, title, path, heading_path, url, updated, score) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (answer_id, s.n, s.title, s.path, s.heading_path, s.url, s.updated, s.score)
                        for s in answer.sources
                    ],
                )
        return answer_id

    def set_answer_message(self, answer_id: int, message_ts: str) -> None:
        self._db.execute("UPDATE answers SET message_ts = ? WHERE id = ?", (message_ts, answer_id))

    def answered_thread(self, channel: str, thread_ts: str) -> bool:
        """Whether the bot has answered, or is answering, in this thread (follow-ups there need no
        mention). A question is recorded when its answer starts, so one sent mid-answer counts too."""
        rows = self._db.fetch(
            "SELECT 1 FROM questions WHERE channel = ? AND thread_ts = ? LIMIT 1", (channel, thread_ts)
        )
        return bool(rows)

    def answer_posted(self, channel: str, message_ts: str) -> bool:
        """Whether the answer to the question in message `message_ts` is in Slack already."""
        rows = self._db.fetch(
            "SELECT 1 FROM questions q JOIN answers a ON a.question_id = q.id "
            "WHERE q.channel = ? AND q.message_ts = ? AND a.message_ts IS NOT NULL LIMIT 1",
            (channel, message_ts),
        )
        return bool(rows)

    def answer_exists(self, answer_id: int) -> bool:
        return bool(self._db.fetch("SELECT 1 FROM answers WHERE id = ?", (answer_id,)))

    def source_paths(self, answer_id: int) -> list[str]:
        """The documents an answer cited (or, not found, the closest ones), in citation order."""
        rows = self._db.fetch(
            "SELECT path FROM sources WHERE answer_id = ? GROUP BY path ORDER BY MIN(n)", (answer_id,)
        )
        return [r[0] for r in rows]

    def record_feedback(self, answer_id: int, user: str, rating: str) -> None:
        """One rating per person per answer; clicking again changes it (a reason is kept)."""
        self._db.execute(
            "INSERT INTO feedback (answer_id, user_id, rating, created) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (answer_id, user_id) DO UPDATE SET rating = excluded.rating, created = excluded.created",
            (answer_id, user, rating, time.time()),
        )

    def record_reason(self, answer_id: int, user: str, reason: str) -> None:
        self._db.execute(
            "INSERT INTO feedback (answer_id, user_id, rating, reason, created) VALUES (?, ?, 'down', ?, ?) "
            "ON CONFLICT (answer_id, user_id) DO UPDATE SET reason = excluded.reason",
            (answer_id, user, reason, time.time()),
        )

    def feedback(self, rating: str | None = None) -> Iterator[FeedbackRecord]:
        where, params = ("WHERE f.rating = ?", (rating,)) if rating is not None else ("", ())
        rows = self._db.fetch(
            "SELECT f.answer_id, f.user_id, f.rating, f.reason, q.text, a.text, a.mode, q.channel, f.created "
            "FROM feedback f JOIN answers a ON a.id = f.answer_id JOIN questions q ON q.id = a.question_id "
            f"{where} ORDER BY f.created, f.answer_id",
            params,
        )
        for row in rows:
            yield FeedbackRecord(
                answer_id=row[0],
                user=row[1],
                rating=row[2],
                reason=row[3],
                question=row[4],
                answer=row[5],
                mode=row[6],
                channel=row[7],
                source_paths=self.source_paths(row[0]),
                created=row[8],
            )

    def counts(self) -> dict[str, int]:
        with self._db.transaction() as tx:
            return {
                table: int(tx.fetch(f"SELECT COUNT(*) FROM {table}")[0][0])
                for table in ("questions", "answers", "feedback")
            }

    # --- assistant threads ---
    def set_thread_context(self, channel: str, thread_ts: str, context_channel: str | None) -> None:
        """Remembers an assistant thread and the channel its user is viewing ("" for none)."""
        self._db.execute(
            "INSERT INTO assistant_threads (channel, thread_ts, context_channel, updated) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (channel, thread_ts) DO UPDATE SET context_channel = excluded.context_channel, "
            "updated = excluded.updated",
            (channel, thread_ts, context_channel or "", time.time()),
        )

    def thread_context(self, channel: str, thread_ts: str) -> str | None:
        """For an assistant thread, the channel its user is viewing ("" when none); None for any other thread."""
        rows = self._db.fetch(
            "SELECT context_channel FROM assistant_threads WHERE channel = ? AND thread_ts = ?", (channel, thread_ts)
        )
        return str(rows[0][0]) if rows else None

    # --- what people ask: suggested prompts and the knowledge-gap report ---
    def popular_questions(self, since: float, limit: int, pool: QuestionPool, min_askers: int) -> list[str]:
        """The questions in `pool` asked since `since` by at least `min_askers` different people (first
        questions of threads, same wording in any case) that got an answer no one rated 👎, those with
        the most askers first: what one person asked is never shown to another."""
        where, params = pool.condition()
        if not where:
            return []
        rows = self._db.fetch(
            "SELECT MIN(q.text) FROM questions q JOIN answers a ON a.question_id = q.id "
            f"WHERE q.created >= ? AND a.mode NOT IN ('not_found', 'failed') AND ({where}) "
            "AND q.id = (SELECT MIN(q2.id) FROM questions q2 "
            "WHERE q2.channel = q.channel AND q2.thread_ts = q.thread_ts) "
            "AND NOT EXISTS (SELECT 1 FROM feedback f WHERE f.answer_id = a.id AND f.rating = 'down') "
            "GROUP BY LOWER(q.text) HAVING COUNT(DISTINCT q.user_id) >= ? "
            "ORDER BY COUNT(DISTINCT q.user_id) DESC, COUNT(*) DESC, MAX(q.created) DESC LIMIT ?",
            (since, *params, min_askers, limit),
        )
        return [str(r[0]) for r in rows]

    def unanswered_questions(self, since: float, until: float, include: GapsInclude) -> list[UnansweredQuestion]:
        """Questions asked in [since, until) answered `not_found` or rated 👎 (a model failure is no
        gap), oldest first, from the conversations `include` names, leaving out those in a digest group
        marked as handled."""
        window = (since, until)
        rows = self._db.fetch(
            "SELECT q.id, q.text, q.channel, q.created, a.id, a.mode, q.channel_type FROM questions q "
            f"JOIN answers a ON a.question_id = q.id WHERE q.created >= ? AND q.created < ? AND {_INCLUDE[include]} "
            "AND (a.mode = 'not_found' OR (a.mode <> 'failed' AND EXISTS "
            "(SELECT 1 FROM feedback f WHERE f.answer_id = a.id AND f.rating = 'down'))) "
            "AND NOT EXISTS (SELECT 1 FROM gap_group_questions gq JOIN gap_groups g ON g.id = gq.group_id "
            "WHERE gq.question_id = q.id AND g.handled IS NOT NULL) ORDER BY q.created, q.id",
            window,
        )
        down: dict[int, list[str]] = {}
        for answer_id, reason in self._db.fetch(
            "SELECT f.answer_id, f.reason FROM feedback f JOIN answers a ON a.id = f.answer_id "
            "JOIN questions q ON q.id = a.question_id WHERE f.rating = 'down' AND q.created >= ? AND q.created < ? "
            "ORDER BY f.created",
            window,
        ):
            down.setdefault(int(answer_id), []).extend([str(reason)] if reason else [])
        return [
            UnansweredQuestion(
                question_id=int(qid),
                text=str(text),
                channel=str(channel),
                created=float(created),
                not_found=mode == "not_found",
                rated_down=int(aid) in down,
                reasons=tuple(down.get(int(aid), ())),
                channel_type=channel_type,
            )
            for qid, text, channel, created, aid, mode, channel_type in rows
        ]

    def add_gap_group(self, question_ids: list[int]) -> int:
        """Stores one group of the digest; its id goes into the group's "Mark as handled" button."""
        with self._db.transaction() as tx:
            group_id = int(tx.fetch("INSERT INTO gap_groups (created) VALUES (?) RETURNING id", (time.time(),))[0][0])
            tx.executemany(
                "INSERT INTO gap_group_questions (group_id, question_id) VALUES (?, ?)",
                [(group_id, qid) for qid in dict.fromkeys(question_ids)],
            )
        return group_id

    def mark_gap_handled(self, group_id: int, user: str) -> bool:
        """True when this marked the group handled (False: unknown, or already handled)."""
        return (
            self._db.execute(
                "UPDATE gap_groups SET handled_by = ?, handled = ? WHERE id = ? AND handled IS NULL",
                (user, time.time(), group_id),
            )
            == 1
        )

    def question_for_answer(self, answer_id: int) -> AskedQuestion | None:
        rows = self._db.fetch(
            "SELECT q.id, q.text, q.channel, q.thread_ts, a.mode FROM answers a "
            "JOIN questions q ON q.id = a.question_id WHERE a.id = ?",
            (answer_id,),
        )
        if not rows:
            return None
        qid, text, channel, thread_ts, mode = rows[0]
        return AskedQuestion(int(qid), str(text), str(channel), str(thread_ts), str(mode))

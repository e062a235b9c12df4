"""The bot's own state in SQLite: delivery dedupe (with a TTL, survives restarts), the questions it
answered with their answers and sources, and the feedback people gave."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bot.answer.records import Answer

_SCHEMA = """
CREATE TABLE IF NOT EXISTS claims (
    key TEXT PRIMARY KEY,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS questions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT,
    channel TEXT NOT NULL,
    thread_ts TEXT NOT NULL,
    message_ts TEXT NOT NULL,
    user TEXT NOT NULL,
    text TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS questions_thread ON questions (channel, thread_ts);
CREATE TABLE IF NOT EXISTS answers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    question_id INTEGER NOT NULL REFERENCES questions (id),
    text TEXT NOT NULL,
    mode TEXT NOT NULL,
    model_error TEXT,
    message_ts TEXT,
    timings TEXT NOT NULL DEFAULT '{}',
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS sources (
    answer_id INTEGER NOT NULL REFERENCES answers (id),
    n INTEGER NOT NULL,
    title TEXT NOT NULL,
    path TEXT NOT NULL,
    heading_path TEXT NOT NULL,
    url TEXT,
    updated TEXT,
    score REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS feedback (
    answer_id INTEGER NOT NULL REFERENCES answers (id),
    user TEXT NOT NULL,
    rating TEXT NOT NULL CHECK (rating IN ('up', 'down')),
    reason TEXT,
    created REAL NOT NULL,
    PRIMARY KEY (answer_id, user)
);
"""


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


MAX_CLAIMS = 100_000  # dedupe rows kept at most, however busy the bot: the oldest go first
PURGE_INTERVAL = 600.0  # seconds between sweeps of expired dedupe rows (or the TTL, if shorter)


class State:
    """Thread-safe: one connection, one lock; every write is its own transaction."""

    def __init__(self, path: Path, dedupe_ttl_hours: float = 24.0, *, max_claims: int = MAX_CLAIMS) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.ttl_seconds = dedupe_ttl_hours * 3600
        self.max_claims = max_claims
        self._purge_interval = min(PURGE_INTERVAL, self.ttl_seconds)
        self._next_purge = 0.0
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL: no fsync per claim (each event writes one), still safe against a crashed process
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)
        self.purge_expired()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def claim(self, key: str, now: float | None = None) -> bool:
        """True the first time `key` is seen within the TTL (this delivery should be handled)."""
        now = time.time() if now is None else now
        if now >= self._next_purge:  # a long-running bot must not grow the table forever
            self.purge_expired(now)
        with self._lock:
            self._db.execute("DELETE FROM claims WHERE key = ? AND created < ?", (key, now - self.ttl_seconds))
            cur = self._db.execute("INSERT OR IGNORE INTO claims (key, created) VALUES (?, ?)", (key, now))
            return cur.rowcount == 1

    def purge_expired(self, now: float | None = None) -> int:
        """Drops expired dedupe rows, then the oldest beyond `max_claims`. Returns how many went."""
        now = time.time() if now is None else now
        with self._lock:
            self._next_purge = now + self._purge_interval
            gone = self._db.execute("DELETE FROM claims WHERE created < ?", (now - self.ttl_seconds,)).rowcount
            return (
                gone
                + self._db.execute(
                    "DELETE FROM claims WHERE key IN (SELECT key FROM claims ORDER BY created DESC LIMIT -1 OFFSET ?)",
                    (self.max_claims,),
                ).rowcount
            )

    def release(self, key: str) -> None:
        """Forget a claim: the work it stood for was not done, so a redelivery should do it."""
        with self._lock:
            self._db.execute("DELETE FROM claims WHERE key = ?", (key,))

    def claim_count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM claims").fetchone()[0])

    def add_question(
        self, *, event_id: str | None, channel: str, thread_ts: str, message_ts: str, user: str, text: str
    ) -> int:
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO questions (event_id, channel, thread_ts, message_ts, user, text, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (event_id, channel, thread_ts, message_ts, user, text, time.time()),
            )
            return int(cur.lastrowid or 0)

    def add_answer(self, question_id: int, answer: Answer) -> int:
        """Store the answer and its sources; the id goes into the feedback buttons."""
        with self._lock:
            self._db.execute("BEGIN")
            cur = self._db.execute(
                "INSERT INTO answers (question_id, text, mode, model_error, timings, created) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (question_id, answer.text, answer.mode, answer.model_error, json.dumps(answer.timings), time.time()),
            )
            answer_id = int(cur.lastrowid or 0)
            self._db.executemany(
                "INSERT INTO sources (answer_id, n, title, path, heading_path, url, updated, score) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(answer_id, s.n, s.title, s.path, s.heading_path, s.url, s.updated, s.score) for s in answer.sources],
            )
            self._db.execute("COMMIT")
            return answer_id

    def set_answer_message(self, answer_id: int, message_ts: str) -> None:
        with self._lock:
            self._db.execute("UPDATE answers SET message_ts = ? WHERE id = ?", (message_ts, answer_id))

    def answered_thread(self, channel: str, thread_ts: str) -> bool:
        """Whether the bot has answered, or is answering, in this thread (follow-ups there need no
        mention). A question is recorded when its answer starts, so one sent mid-answer counts too."""
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM questions WHERE channel = ? AND thread_ts = ? LIMIT 1", (channel, thread_ts)
            ).fetchone()
        return row is not None

    def answer_exists(self, answer_id: int) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM answers WHERE id = ?", (answer_id,)).fetchone() is not None

    def source_paths(self, answer_id: int) -> list[str]:
        """The documents an answer cited (or, not found, the closest ones), in citation order."""
        with self._lock:
            return [
                r[0]
                for r in self._db.execute(
                    "SELECT path FROM sources WHERE answer_id = ? GROUP BY path ORDER BY MIN(n)", (answer_id,)
                )
            ]

    def record_feedback(self, answer_id: int, user: str, rating: str) -> None:
        """One rating per person per answer; clicking again changes it (a reason is kept)."""
        with self._lock:
            self._db.execute(
                "INSERT INTO feedback (answer_id, user, rating, created) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (answer_id, user) DO UPDATE SET rating = excluded.rating, created = excluded.created",
                (answer_id, user, rating, time.time()),
            )

    def record_reason(self, answer_id: int, user: str, reason: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO feedback (answer_id, user, rating, reason, created) VALUES (?, ?, 'down', ?, ?) "
                "ON CONFLICT (answer_id, user) DO UPDATE SET reason = excluded.reason",
                (answer_id, user, reason, time.time()),
            )

    def feedback(self, rating: str | None = None) -> Iterator[FeedbackRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT f.answer_id, f.user, f.rating, f.reason, q.text, a.text, a.mode, q.channel, f.created "
                "FROM feedback f JOIN answers a ON a.id = f.answer_id JOIN questions q ON q.id = a.question_id "
                "WHERE ? IS NULL OR f.rating = ? ORDER BY f.created, f.answer_id",
                (rating, rating),
            ).fetchall()
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
        with self._lock:
            return {
                table: int(self._db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
                for table in ("questions", "answers", "feedback")
            }

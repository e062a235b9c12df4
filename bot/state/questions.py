"""The questions the bot answered, with their answers and sources, the kind of conversation each was
asked in, and the questions that may be suggested to others."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.state.db import Database

if TYPE_CHECKING:
    from bot.answer.records import Answer


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


class Questions:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._channel_types: dict[str, str] = {}  # what this process last wrote to channel_types

    def noted(self, channel: str, channel_type: str) -> bool:
        """Whether this process wrote `channel_type` for `channel` already (no database call)."""
        return self._channel_types.get(channel) == channel_type

    def note_channel_type(self, channel: str, channel_type: str) -> None:
        """Remembers what kind of conversation `channel` is (Slack's `channel_type` from its message
        events: `app_mention` does not say); questions recorded there from now on carry it."""
        if self.noted(channel, channel_type):
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

    def counts(self) -> dict[str, int]:
        with self._db.transaction() as tx:
            return {
                table: int(tx.fetch(f"SELECT COUNT(*) FROM {table}")[0][0])
                for table in ("questions", "answers", "feedback")
            }

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

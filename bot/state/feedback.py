"""The ratings (👍 / 👎) people gave the answers, and the reasons given for a 👎."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

from bot.state.db import Database
from bot.state.questions import Questions


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


class Feedback:
    def __init__(self, db: Database, questions: Questions) -> None:
        self._db = db
        self._questions = questions

    def record(self, answer_id: int, user: str, rating: str) -> None:
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

    def records(self, rating: str | None = None) -> Iterator[FeedbackRecord]:
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
                source_paths=self._questions.source_paths(row[0]),
                created=row[8],
            )

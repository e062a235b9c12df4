"""The knowledge-gap report's questions (not found, or rated 👎), and the digest's groups of them,
which a doc owner marks as handled."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.state.db import Database

if TYPE_CHECKING:
    from bot.config import GapsInclude

# Which questions the knowledge-gap report shows (QWENBOT_GAPS_INCLUDE): public channels only; every
# channel (private ones and group DMs too, and channels of unknown kind); or everything, DMs included
_INCLUDE = {
    "public": "q.channel_type = 'channel'",
    "channels": "SUBSTR(q.channel, 1, 1) <> 'D' AND COALESCE(q.channel_type, '') <> 'im'",
    "all": "1 = 1",
}


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


class Gaps:
    def __init__(self, db: Database) -> None:
        self._db = db

    def unanswered(self, since: float, until: float, include: GapsInclude) -> list[UnansweredQuestion]:
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
        down = self._down_reasons(window)
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

    def _down_reasons(self, window: tuple[float, float]) -> dict[int, list[str]]:
        """The answers to the window's questions rated 👎, with the reasons given."""
        down: dict[int, list[str]] = {}
        for answer_id, reason in self._db.fetch(
            "SELECT f.answer_id, f.reason FROM feedback f JOIN answers a ON a.id = f.answer_id "
            "JOIN questions q ON q.id = a.question_id WHERE f.rating = 'down' AND q.created >= ? AND q.created < ? "
            "ORDER BY f.created",
            window,
        ):
            down.setdefault(int(answer_id), []).extend([str(reason)] if reason else [])
        return down

    def add_group(self, question_ids: list[int]) -> int:
        """Stores one group of the digest; its id goes into the group's "Mark as handled" button."""
        with self._db.transaction() as tx:
            group_id = int(tx.fetch("INSERT INTO gap_groups (created) VALUES (?) RETURNING id", (time.time(),))[0][0])
            tx.executemany(
                "INSERT INTO gap_group_questions (group_id, question_id) VALUES (?, ?)",
                [(group_id, qid) for qid in dict.fromkeys(question_ids)],
            )
        return group_id

    def mark_handled(self, group_id: int, user: str) -> bool:
        """True when this marked the group handled (False: unknown, or already handled)."""
        return (
            self._db.execute(
                "UPDATE gap_groups SET handled_by = ?, handled = ? WHERE id = ? AND handled IS NULL",
                (user, time.time(), group_id),
            )
            == 1
        )

"""Knowledge the bot learns in Slack: the threads escalated to a scope's experts (each thread once) and
the learned answers experts saved from them. Learned answers live here so that every replica has them;
each replica mirrors them as Markdown files into the `learned` root it indexes (bot/knowledge/)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

from bot.state.db import Database

LearnedStatus = Literal["active", "archived", "removed"]


@dataclass(frozen=True)
class Escalation:
    channel: str
    thread_ts: str
    question_id: int | None
    asker: str
    expert_group: str
    offered_ts: str | None  # the bot's "Save as answer" offer in the thread, once an expert replied
    created: float


@dataclass(frozen=True)
class LearnedAnswer:
    id: int
    question: str
    answer: str
    author: str  # the expert whose reply it is (a Slack user id)
    author_name: str  # as shown in citations (never a mention)
    saved_by: str
    channel: str
    thread_ts: str
    permalink: str | None
    scope: str  # the scope key of the channel it was saved in (bot/knowledge/scopes.py)
    created: float
    expires: float | None
    status: LearnedStatus
    message_ts: str | None  # the bot's "Saved" message in the thread (it carries the remove button)


@dataclass(frozen=True)
class PrivateAnswer:
    """An answer given to one person only (`/qwenbot ask`); `answer`: the Answer as JSON."""

    id: int
    channel: str
    user: str
    question: str
    answer: str
    shared_ts: str | None


@dataclass(frozen=True)
class NewLearned:
    question: str
    answer: str
    author: str
    author_name: str
    saved_by: str
    channel: str
    thread_ts: str
    permalink: str | None
    scope: str
    expires: float | None


_LEARNED = ", ".join(
    "id question answer author author_name saved_by channel thread_ts permalink scope created expires status "
    "message_ts".split()
)


def _escalation(row: tuple[Any, ...]) -> Escalation:
    channel, thread_ts, qid, asker, group, offered, created = row
    return Escalation(channel, thread_ts, None if qid is None else int(qid), asker, group, offered, float(created))


def _learned(row: tuple[Any, ...]) -> LearnedAnswer:
    (
        lid,
        question,
        answer,
        author,
        name,
        saved_by,
        channel,
        thread_ts,
        permalink,
        scope,
        created,
        expires,
        status,
        ts,
    ) = row
    return LearnedAnswer(
        int(lid),
        str(question),
        str(answer),
        str(author),
        str(name),
        str(saved_by),
        str(channel),
        str(thread_ts),
        permalink,
        str(scope),
        float(created),
        None if expires is None else float(expires),
        status,
        ts,
    )


class Knowledge:
    def __init__(self, db: Database) -> None:
        self._db = db

    # --- escalations ---
    def escalate(self, channel: str, thread_ts: str, question_id: int | None, asker: str, group: str) -> bool:
        """Records the thread's escalation; False when it was escalated already (never twice)."""
        return bool(
            self._db.execute(
                "INSERT INTO escalations (channel, thread_ts, question_id, asker, expert_group, created) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (channel, thread_ts) DO NOTHING",
                (channel, thread_ts, question_id, asker, group, time.time()),
            )
        )

    def unescalate(self, channel: str, thread_ts: str) -> None:
        """The escalation could not be posted: a second click tries again."""
        self._db.execute("DELETE FROM escalations WHERE channel = ? AND thread_ts = ?", (channel, thread_ts))

    def escalation(self, channel: str, thread_ts: str) -> Escalation | None:
        rows = self._db.fetch(
            "SELECT channel, thread_ts, question_id, asker, expert_group, offered_ts, created FROM escalations "
            "WHERE channel = ? AND thread_ts = ?",
            (channel, thread_ts),
        )
        return _escalation(rows[0]) if rows else None

    def claim_offer(self, channel: str, thread_ts: str) -> bool:
        """Whether this call may post the thread's "Save as answer" offer (the first expert reply does)."""
        return bool(
            self._db.execute(
                "UPDATE escalations SET offered_ts = '' WHERE channel = ? AND thread_ts = ? AND offered_ts IS NULL",
                (channel, thread_ts),
            )
        )

    def set_offer(self, channel: str, thread_ts: str, offered_ts: str | None) -> None:
        """The offer's message; None gives the claim back (it could not be posted)."""
        self._db.execute(
            "UPDATE escalations SET offered_ts = ? WHERE channel = ? AND thread_ts = ?",
            (offered_ts, channel, thread_ts),
        )

    def escalations_since(self, since: float, channels: tuple[str, ...] | None = None) -> list[Escalation]:
        """Escalations since `since`, oldest first; `channels`: only those (None: all)."""
        rows = self._db.fetch(
            "SELECT channel, thread_ts, question_id, asker, expert_group, offered_ts, created FROM escalations "
            "WHERE created >= ? ORDER BY created",
            (since,),
        )
        found = [_escalation(r) for r in rows]
        return [e for e in found if channels is None or e.channel in channels]

    def question_text(self, question_id: int) -> str | None:
        rows = self._db.fetch("SELECT text FROM questions WHERE id = ?", (question_id,))
        return str(rows[0][0]) if rows else None

    def question_user(self, question_id: int) -> str | None:
        rows = self._db.fetch("SELECT user_id FROM questions WHERE id = ?", (question_id,))
        return str(rows[0][0]) if rows else None

    def channel_type(self, channel: str) -> str | None:
        """Slack's channel_type for `channel`, as its message events last said (None: not heard yet)."""
        rows = self._db.fetch("SELECT channel_type FROM channel_types WHERE channel = ?", (channel,))
        return str(rows[0][0]) if rows else None

    # --- private answers ---
    def add_private(self, channel: str, user: str, question: str, answer: str) -> int:
        rows = self._db.fetch(
            "INSERT INTO private_answers (channel, user_id, question, answer, created) VALUES (?, ?, ?, ?, ?) "
            "RETURNING id",
            (channel, user, question, answer, time.time()),
        )
        return int(rows[0][0])

    def private(self, private_id: int) -> PrivateAnswer | None:
        rows = self._db.fetch(
            "SELECT id, channel, user_id, question, answer, shared_ts FROM private_answers WHERE id = ?", (private_id,)
        )
        return PrivateAnswer(int(rows[0][0]), *rows[0][1:]) if rows else None

    def claim_share(self, private_id: int) -> bool:
        """Whether this call may share the private answer (once)."""
        return bool(
            self._db.execute(
                "UPDATE private_answers SET shared_ts = '' WHERE id = ? AND shared_ts IS NULL", (private_id,)
            )
        )

    def set_shared(self, private_id: int, shared_ts: str | None) -> None:
        """Where it was shared; None gives the claim back (it could not be posted)."""
        self._db.execute("UPDATE private_answers SET shared_ts = ? WHERE id = ?", (shared_ts, private_id))

    # --- learned answers ---
    def add_learned(self, new: NewLearned) -> int:
        rows = self._db.fetch(
            "INSERT INTO learned_answers (question, answer, author, author_name, saved_by, channel, thread_ts, "
            "permalink, scope, created, expires) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (
                new.question,
                new.answer,
                new.author,
                new.author_name,
                new.saved_by,
                new.channel,
                new.thread_ts,
                new.permalink,
                new.scope,
                time.time(),
                new.expires,
            ),
        )
        return int(rows[0][0])

    def set_learned_message(self, learned_id: int, message_ts: str) -> None:
        self._db.execute("UPDATE learned_answers SET message_ts = ? WHERE id = ?", (message_ts, learned_id))

    def learned(self, learned_id: int) -> LearnedAnswer | None:
        rows = self._db.fetch(f"SELECT {_LEARNED} FROM learned_answers WHERE id = ?", (learned_id,))
        return _learned(rows[0]) if rows else None

    def learned_answers(self, *, include_removed: bool = False) -> list[LearnedAnswer]:
        """Every learned answer (active and archived; removed ones too when asked), oldest first."""
        where = "" if include_removed else "WHERE status <> 'removed'"
        return [_learned(r) for r in self._db.fetch(f"SELECT {_LEARNED} FROM learned_answers {where} ORDER BY id")]

    def set_status(self, learned_id: int, status: LearnedStatus) -> bool:
        """False when there is no such learned answer, or it has that status already."""
        return bool(
            self._db.execute(
                "UPDATE learned_answers SET status = ? WHERE id = ? AND status <> ?", (status, learned_id, status)
            )
        )

    def expire(self, now: float | None = None) -> list[int]:
        """Archives the active learned answers whose expiry has passed; returns their ids."""
        now = time.time() if now is None else now
        rows = self._db.fetch(
            "UPDATE learned_answers SET status = 'archived' WHERE status = 'active' AND expires IS NOT NULL "
            "AND expires <= ? RETURNING id",
            (now,),
        )
        return sorted(int(r[0]) for r in rows)

    def citations_since(self, since: float, prefix: str) -> dict[str, int]:
        """How many answers since `since` cited each document under `prefix` (the learned root's)."""
        rows = self._db.fetch(
            "SELECT s.path, COUNT(DISTINCT s.answer_id) FROM sources s JOIN answers a ON a.id = s.answer_id "
            "WHERE a.created >= ? AND a.mode IN ('generated', 'extractive') AND s.path LIKE ? GROUP BY s.path",
            (since, prefix + "%"),
        )
        return {str(path): int(n) for path, n in rows}

"""The knowledge-gap report: questions the docs did not answer (`not_found`) or whose answers were
rated 👎, grouped by similar wording with the embedding model the bot already has loaded, each group
with its count, an example, the 👎 reasons, and the nearest documents with their owners: the docs to
write next. One report, three ways to get it: `qwenbot gaps`, `qwenbot questions --unanswered`, and
the digest the running bot posts on a schedule (QWENBOT_GAPS_CHANNEL / _SCHEDULE / _TIMEZONE).

Privacy: only questions from public channels by default (QWENBOT_GAPS_INCLUDE widens it), grouped
per channel (all DMs together), and each group's nearest documents are searched in that channel's
scope, so the report never points outside what its askers could be answered from.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from bot.config import GapsInclude
from bot.errors import ConfigError
from bot.knowledge.summary import KnowledgeSummary, knowledge_summary, summary_lines
from bot.slack.policy import ChannelScopes
from bot.state import State
from bot.state.gaps import UnansweredQuestion
from retrieval.models import Hit, SearchFilter

# A wording joins a group when its embedding's cosine similarity to the group's mean is at least this.
# With MiniLM, rewordings of one question ("Where can I park my car?" / "Where do employees park?")
# score 0.56-0.93 against each other and higher against a group's mean; different questions, even
# on neighbouring topics (parking / bringing a dog to the office), 0.1-0.41. The middle, not a fit.
GROUP_SIMILARITY = 0.55
NEAREST_DOCS = 3

Embed = Callable[[list[str]], np.ndarray]  # texts -> one normalised row each
Search = Callable[[str, int, SearchFilter], list[Hit]]  # query, k, scope -> hits, best first


@dataclass(frozen=True)
class NearDoc:
    path: str
    title: str
    url: str | None
    owner: str | None  # front matter `owner`: untrusted text


def asked_in(question: UnansweredQuestion) -> str | None:
    """Where a question was asked, as the report shows it: its channel, or None for a DM (all DMs are
    one place: no DM's id is shown)."""
    return None if question.channel.startswith("D") or question.channel_type == "im" else question.channel


@dataclass
class GapGroup:
    """Questions worded alike, asked in one place, oldest first."""

    questions: list[UnansweredQuestion]
    documents: list[NearDoc] = field(default_factory=list)

    @property
    def channel(self) -> str | None:
        """The channel the questions were asked in; None: direct messages."""
        return asked_in(self.questions[0])

    @property
    def count(self) -> int:
        return len(self.questions)

    @property
    def example(self) -> str:
        return self.questions[0].text

    @property
    def wordings(self) -> list[str]:
        """Each distinct wording once (case aside), in the order first asked."""
        seen: dict[str, str] = {}
        for q in self.questions:
            seen.setdefault(q.text.casefold(), q.text)
        return list(seen.values())

    @property
    def not_found(self) -> int:
        return sum(q.not_found for q in self.questions)

    @property
    def rated_down(self) -> int:
        return sum(q.rated_down for q in self.questions)

    @property
    def reasons(self) -> list[str]:
        return [r for q in self.questions for r in q.reasons]

    @property
    def question_ids(self) -> list[int]:
        return [q.question_id for q in self.questions]

    @property
    def owners(self) -> list[str]:
        return list(dict.fromkeys(d.owner for d in self.documents if d.owner))


@dataclass
class GapReport:
    since: float
    until: float
    groups: list[GapGroup]
    # escalations, answers experts saved, learned answers' citations (bot/knowledge/summary.py)
    knowledge: KnowledgeSummary = field(default_factory=KnowledgeSummary)

    @property
    def total(self) -> int:
        return sum(g.count for g in self.groups)


def group_questions(
    questions: list[UnansweredQuestion], embed: Embed, threshold: float = GROUP_SIMILARITY
) -> list[GapGroup]:
    """Greedy grouping in the order asked: each question joins the group of the same place (`asked_in`)
    whose mean embedding is closest, if close enough, else starts one. Largest groups first (ties: the
    most recent first)."""
    if not questions:
        return []
    vectors = embed([q.text for q in questions])
    groups: list[GapGroup] = []
    sums: list[np.ndarray] = []
    for question, vector in zip(questions, vectors, strict=True):
        best, best_sim = -1, threshold
        for i, total in enumerate(sums):
            if groups[i].channel != asked_in(question):
                continue
            sim = float(np.dot(vector, total) / (np.linalg.norm(total) or 1.0))
            if sim >= best_sim:
                best, best_sim = i, sim
        if best == -1:
            groups.append(GapGroup([question]))
            sums.append(np.array(vector, dtype=np.float32))
        else:
            groups[best].questions.append(question)
            sums[best] += vector
    return sorted(groups, key=lambda g: (-g.count, -g.questions[-1].created))


def nearest_documents(search: Search, question: str, scope: SearchFilter, limit: int = NEAREST_DOCS) -> list[NearDoc]:
    docs: dict[str, NearDoc] = {}
    for hit in search(question, 4 * limit, scope):
        docs.setdefault(hit.path, NearDoc(hit.path, hit.title, hit.url, hit.owner))
        if len(docs) == limit:
            break
    return list(docs.values())


@dataclass(frozen=True)
class ReportSource:
    """What a report reads: the bot's state, the index (embed, search), which conversations it may
    show (QWENBOT_GAPS_INCLUDE) and the channels' doc scopes."""

    state: State
    embed: Embed
    search: Search
    include: GapsInclude
    scopes: ChannelScopes


def build_report(source: ReportSource, since: float, until: float) -> GapReport:
    groups = group_questions(source.state.gaps.unanswered(since, until, source.include), source.embed)
    for group in groups:
        # a DM's scope is the default one: for_channel gives it for any channel not listed
        scope = source.scopes.for_channel(group.channel or "")
        group.documents = nearest_documents(source.search, group.example, scope)
    return GapReport(since, until, groups, knowledge_summary(source.state.knowledge, since, until, source.include))


_SINCE = re.compile(r"\s*(\d+)\s*([mhdw])\s*")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str) -> timedelta:
    """A window like "7d", "24h", "2w" or "90m" as a timedelta; ConfigError for anything else."""
    match = _SINCE.fullmatch(text)
    if not match or int(match.group(1)) == 0:
        raise ConfigError(f"--since {text!r}: expected a number and a unit, like 7d, 24h, 2w or 90m")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


# --- the report as text and JSON (qwenbot gaps) ---


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


def report_json(report: GapReport) -> dict[str, Any]:
    return {
        "since": _iso(report.since),
        "until": _iso(report.until),
        "questions": report.total,
        "groups": [
            {
                "count": g.count,
                "channel": g.channel,  # null: direct messages
                "example": g.example,
                "wordings": g.wordings,
                "not_found": g.not_found,
                "rated_down": g.rated_down,
                "reasons": g.reasons,
                "documents": [{"path": d.path, "title": d.title, "url": d.url, "owner": d.owner} for d in g.documents],
                "owners": g.owners,
                "question_ids": g.question_ids,
            }
            for g in report.groups
        ],
        "knowledge": {
            "escalations": report.knowledge.escalations,
            "saved": [dataclasses.asdict(s) for s in report.knowledge.saved],
            "cited": [dataclasses.asdict(c) for c in report.knowledge.cited],
        },
    }


def report_text(report: GapReport) -> str:
    head = (
        f"Unanswered questions from {_iso(report.since)} to {_iso(report.until)}: "
        f"{report.total} in {len(report.groups)} group{'' if len(report.groups) == 1 else 's'}"
    )
    learned = summary_lines(report.knowledge)
    if not report.groups:
        return "\n".join([head + " (nothing the docs missed, and no 👎)", *learned])
    lines = [head + ". The docs to write next:", ""]
    for g in report.groups:
        lines.append(f"{g.count:>4}x  {g.example}")
        lines.append(f"       asked in {g.channel or 'direct messages'}")
        for wording in g.wordings[1:4]:
            lines.append(f"       also: {wording}")
        outcome = [f"{g.not_found} not in the docs"] if g.not_found else []
        outcome += [f"{g.rated_down} rated 👎"] if g.rated_down else []
        lines.append("       " + ", ".join(outcome))
        lines.extend(f'       👎 "{r}"' for r in g.reasons[:3])
        for d in g.documents:
            lines.append(f"       nearest: {d.path} ({d.title}" + (f"; owner: {d.owner})" if d.owner else ")"))
        lines.append("")
    return "\n".join(lines + learned).rstrip()

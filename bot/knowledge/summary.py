"""What the knowledge-gap report (`qwenbot gaps`, the digest) says of the bot's learning: the threads
escalated to experts, the answers experts saved, and how often learned answers were cited since.

Under the report's privacy rule (QWENBOT_GAPS_INCLUDE): an escalation or a saved answer is counted or
shown only when the conversation it came from may be shown (by default, public channels only)."""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.config import GapsInclude
from bot.knowledge.learned import document_key
from bot.state.knowledge import Knowledge, LearnedAnswer
from retrieval.sources.config import LEARNED_ROOT


@dataclass(frozen=True)
class LearnedLine:
    question: str
    author_name: str
    channel: str
    status: str
    citations: int  # answers that cited it in the report's window


@dataclass(frozen=True)
class KnowledgeSummary:
    escalations: int = 0  # threads escalated to experts in the window
    saved: list[LearnedLine] = field(default_factory=list)  # saved in the window
    cited: list[LearnedLine] = field(default_factory=list)  # learned answers cited in the window, most first

    @property
    def empty(self) -> bool:
        return not (self.escalations or self.saved or self.cited)


def _shown(knowledge: Knowledge, channel: str, include: GapsInclude) -> bool:
    if include == "all":
        return True
    if channel.startswith("D"):
        return False
    return include == "channels" or knowledge.channel_type(channel) == "channel"


def knowledge_summary(knowledge: Knowledge, since: float, until: float, include: GapsInclude) -> KnowledgeSummary:
    escalations = [
        e for e in knowledge.escalations_since(since) if e.created < until and _shown(knowledge, e.channel, include)
    ]
    answers = [a for a in knowledge.learned_answers() if _shown(knowledge, a.channel, include)]
    cited = knowledge.citations_since(since, f"{LEARNED_ROOT}/")

    def line(a: LearnedAnswer) -> LearnedLine:
        return LearnedLine(a.question, a.author_name, a.channel, a.status, cited.get(document_key(a), 0))

    saved = [line(a) for a in answers if since <= a.created < until]
    used = sorted((line(a) for a in answers if cited.get(document_key(a))), key=lambda x: -x.citations)
    return KnowledgeSummary(len(escalations), saved, used)


def summary_lines(summary: KnowledgeSummary) -> list[str]:
    """The summary as plain lines (the digest quotes and escapes them, `qwenbot gaps` prints them)."""
    if summary.empty:
        return []
    lines = [
        f"Escalated to experts: {summary.escalations}; answers saved by experts: {len(summary.saved)}; "
        f"learned answers cited: {sum(c.citations for c in summary.cited)} times"
    ]
    lines += [f"saved: {s.question} (answered by {s.author_name}, in {s.channel})" for s in summary.saved[:5]]
    lines += [f"cited {c.citations}x: {c.question} ({c.status})" for c in summary.cited[:5]]
    return lines

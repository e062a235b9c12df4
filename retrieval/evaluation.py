"""Evaluation figures: retrieval at source-document level (Recall@5, MRR@10, nDCG@10, search latency),
abstention, and whole answers (citations, token F1, latency).

A document's rank is the rank of its best chunk: the ranked chunks are deduplicated to documents
before the cut at k. Questions whose `sources` is empty (the docs do not answer them) are left out of
the ranking metrics and measure abstention instead. Relevance is binary. The runs that produce the
outcomes scored here live with their callers (bot/answer/evaluation.py runs the bot's pipeline).
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Protocol

from retrieval.errors import QuestionsError
from retrieval.models import Hit

RECALL_K = 5
RANK_K = 10


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    sources: tuple[str, ...]  # document paths relative to the docs folder; () = unanswerable
    history: tuple[tuple[str, str], ...] = ()  # earlier turns of the thread, oldest first: (role, text)
    answer: str | None = None  # the expected answer, for token F1


@dataclass
class Metrics:
    """The figures of one group of questions (all of them, standalone ones, ones with a thread)."""

    questions: int
    answerable: int
    unanswerable: int
    recall_at_5: float
    mrr_at_10: float
    ndcg_at_10: float
    latency_p50_ms: float
    latency_p95_ms: float
    caught: float  # share of unanswerable questions the pipeline would not answer
    answerable_wrongly: float  # share of answerable questions it would not answer

    def to_json(self) -> dict[str, Any]:
        return {
            "questions": self.questions,
            "answerable": self.answerable,
            "unanswerable": self.unanswerable,
            "recall@5": round(self.recall_at_5, 4),
            "mrr@10": round(self.mrr_at_10, 4),
            "ndcg@10": round(self.ndcg_at_10, 4),
            "latency_ms": {"p50": round(self.latency_p50_ms, 2), "p95": round(self.latency_p95_ms, 2)},
            "abstain": {
                "unanswerable": self.unanswerable,
                "caught": round(self.caught, 4),
                "answerable_wrongly": round(self.answerable_wrongly, 4),
            },
        }

    def to_text(self) -> str:
        return (
            f"questions: {self.questions} ({self.answerable} answerable, {self.unanswerable} unanswerable, "
            "left out of the ranking metrics)\n"
            f"Recall@5: {self.recall_at_5:.4f}\nMRR@10:   {self.mrr_at_10:.4f}\nnDCG@10:  {self.ndcg_at_10:.4f}\n"
            f"search latency: p50 {self.latency_p50_ms:.1f} ms, p95 {self.latency_p95_ms:.1f} ms\n"
            f"not answered: {self.caught:.0%} of unanswerable, {self.answerable_wrongly:.0%} of answerable (wrongly)"
        )


@dataclass
class AnswerMetrics:
    """Whole-pipeline figures (`qwenbot eval --answers`)."""

    generated: int
    not_found: int
    extractive: int
    unanswerable_caught: float  # share of unanswerable questions answered not_found
    answerable_refused: float  # share of answerable questions answered not_found
    citation_precision: float  # of the documents answers cite, the share that are gold (answerable, answered)
    citation_recall: float  # of the gold documents, the share the answer cites (answerable, answered)
    answer_f1: float  # token F1 against the question's "answer" (questions that have one)
    latency_p50_ms: float  # the whole pipeline: search, model, fallbacks
    latency_p95_ms: float

    def to_json(self) -> dict[str, Any]:
        return {
            "generated": self.generated,
            "not_found": self.not_found,
            "extractive": self.extractive,
            "unanswerable_caught": round(self.unanswerable_caught, 4),
            "answerable_refused": round(self.answerable_refused, 4),
            "citation_precision": round(self.citation_precision, 4),
            "citation_recall": round(self.citation_recall, 4),
            "answer_f1": round(self.answer_f1, 4),
            "latency_ms": {"p50": round(self.latency_p50_ms, 2), "p95": round(self.latency_p95_ms, 2)},
        }

    def to_text(self) -> str:
        return (
            f"answers: {self.generated} generated, {self.not_found} not found, {self.extractive} extractive; "
            f"not found: {self.unanswerable_caught:.0%} of unanswerable, {self.answerable_refused:.0%} of answerable\n"
            f"citations: precision {self.citation_precision:.4f}, recall {self.citation_recall:.4f}; "
            f"answer F1 {self.answer_f1:.4f}\n"
            f"answer latency: p50 {self.latency_p50_ms:.0f} ms, p95 {self.latency_p95_ms:.0f} ms"
        )


@dataclass
class EvalReport(Metrics):
    """All questions' figures, the same split by standalone / with thread history, and answers."""

    missing_sources: list[str]  # sources named by questions but not among the indexed documents
    standalone: Metrics
    with_history: Metrics
    answers: AnswerMetrics | None = None

    def to_json(self) -> dict[str, Any]:
        out = {
            **super().to_json(),
            "missing_sources": self.missing_sources,
            "standalone": self.standalone.to_json(),
            "with_history": self.with_history.to_json(),
        }
        if self.answers is not None:
            out["answers"] = self.answers.to_json()
        return out

    def to_text(self) -> str:
        parts = [super().to_text()]
        for name, group in (("standalone", self.standalone), ("with thread history", self.with_history)):
            if group.questions and group.questions != self.questions:
                parts.append(
                    f"{name}: {group.questions} questions, nDCG@10 {group.ndcg_at_10:.4f}, "
                    f"Recall@5 {group.recall_at_5:.4f}, not answered {group.caught:.0%} of unanswerable, "
                    f"{group.answerable_wrongly:.0%} of answerable"
                )
        if self.answers is not None:
            parts.append(self.answers.to_text())
        return "\n".join(parts)


def load_questions(path: Path) -> list[Question]:
    """Reads QUESTIONS.jsonl: one {"id", "question", "sources": [...], "answer"?, "history"?} object per
    line; "history" is [{"role": "user" | "assistant", "text": ...}, ...], oldest first."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise QuestionsError(f"{path}: cannot read it ({exc})") from None
    questions: list[Question] = []
    seen: set[str] = set()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            raw = json.loads(line)
        except ValueError as exc:
            raise QuestionsError(f"{where}: not valid JSON ({exc})") from None
        if not isinstance(raw, dict):
            raise QuestionsError(f"{where}: expected a JSON object, got {type(raw).__name__}")
        text = raw.get("question")
        if not isinstance(text, str) or not text.strip():
            raise QuestionsError(f"{where}: 'question' must be non-empty text")
        sources = raw.get("sources")
        if not isinstance(sources, list) or not all(isinstance(s, str) and s.strip() for s in sources):
            raise QuestionsError(f"{where}: 'sources' must be a list of document paths ([] if unanswerable)")
        answer = raw.get("answer")
        if answer is not None and not isinstance(answer, str):
            raise QuestionsError(f"{where}: 'answer' must be text")
        qid = str(raw.get("id", number))
        if qid in seen:
            raise QuestionsError(f"{where}: duplicate id {qid!r}")
        seen.add(qid)
        paths = tuple(s.strip().removeprefix("./") for s in sources)
        questions.append(Question(qid, text.strip(), paths, _history(raw.get("history", []), where), answer))
    if not questions:
        raise QuestionsError(f"{path}: no questions in it")
    return questions


def _history(raw: object, where: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(raw, list) or not all(
        isinstance(t, dict) and t.get("role") in ("user", "assistant") and isinstance(t.get("text"), str) for t in raw
    ):
        raise QuestionsError(f'{where}: \'history\' must be a list of {{"role": "user"|"assistant", "text": ...}}')
    return tuple((t["role"], t["text"]) for t in raw)


# --- metrics (pure) ---------------------------------------------------------------------------


def ranked_documents(hits: Sequence[Hit]) -> list[str]:
    """Document paths in order of their best chunk."""
    return list(dict.fromkeys(h.path for h in hits))


def recall_at_k(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    return len(relevant.intersection(ranked[:k])) / len(relevant)


def reciprocal_rank(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    for rank, doc in enumerate(ranked[:k], start=1):
        if doc in relevant:
            return 1.0 / rank
    return 0.0


def ndcg_at_k(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    dcg = sum(1.0 / math.log2(rank + 1) for rank, doc in enumerate(ranked[:k], start=1) if doc in relevant)
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(len(relevant), k) + 1))
    return dcg / ideal


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile, q in [0, 100]."""
    if not values:
        return 0.0
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def token_f1(predicted: str, expected: str) -> float:
    """SQuAD-style token F1 of lowercased words; [n] citations are not words of the answer."""
    pred = _words(predicted)
    gold = _words(expected)
    common = sum(min(pred.count(w), gold.count(w)) for w in set(pred))
    if not pred or not gold or not common:
        return float(pred == gold)
    precision, recall = common / len(pred), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", re.sub(r"\[[\d\s,;]+\]", " ", text.lower()))


# --- scoring outcomes ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What retrieval did with one question."""

    question: Question
    ranked: list[str]  # document paths, best first
    answered: bool  # retrieval would let the model answer (no "not in the docs")
    latency_ms: float


@dataclass(frozen=True)
class AnswerOutcome:
    """What the whole pipeline answered to one question."""

    question: Question
    mode: str  # generated / not_found / extractive
    cited: tuple[str, ...]  # document paths the answer cites
    text: str
    latency_ms: float


def score(outcomes: Sequence[Outcome], indexed: set[str], answers: Sequence[AnswerOutcome] | None = None) -> EvalReport:
    missing = sorted({s for o in outcomes for s in o.question.sources if s not in indexed})
    overall = metrics(outcomes)
    return EvalReport(
        **{f.name: getattr(overall, f.name) for f in fields(Metrics)},
        missing_sources=missing,
        standalone=metrics([o for o in outcomes if not o.question.history]),
        with_history=metrics([o for o in outcomes if o.question.history]),
        answers=None if answers is None else answer_metrics(answers),
    )


def metrics(outcomes: Sequence[Outcome]) -> Metrics:
    answerable = [o for o in outcomes if o.question.sources]
    unanswerable = [o for o in outcomes if not o.question.sources]
    recalls, rrs, ndcgs = [], [], []
    for o in answerable:
        relevant = set(o.question.sources)
        recalls.append(recall_at_k(o.ranked, relevant, RECALL_K))
        rrs.append(reciprocal_rank(o.ranked, relevant, RANK_K))
        ndcgs.append(ndcg_at_k(o.ranked, relevant, RANK_K))
    latencies = [o.latency_ms for o in outcomes]
    return Metrics(
        questions=len(outcomes),
        answerable=len(answerable),
        unanswerable=len(unanswerable),
        recall_at_5=_mean(recalls),
        mrr_at_10=_mean(rrs),
        ndcg_at_10=_mean(ndcgs),
        latency_p50_ms=percentile(latencies, 50),
        latency_p95_ms=percentile(latencies, 95),
        caught=_mean([float(not o.answered) for o in unanswerable]),
        answerable_wrongly=_mean([float(not o.answered) for o in answerable]),
    )


def answer_metrics(outcomes: Sequence[AnswerOutcome]) -> AnswerMetrics:
    answerable = [o for o in outcomes if o.question.sources]
    unanswerable = [o for o in outcomes if not o.question.sources]
    answered = [o for o in answerable if o.mode != "not_found"]
    precisions = [len(set(o.cited) & set(o.question.sources)) / len(set(o.cited)) for o in answered if o.cited]
    recalls = [len(set(o.cited) & set(o.question.sources)) / len(set(o.question.sources)) for o in answered]
    latencies = [o.latency_ms for o in outcomes]
    return AnswerMetrics(
        generated=sum(o.mode == "generated" for o in outcomes),
        not_found=sum(o.mode == "not_found" for o in outcomes),
        extractive=sum(o.mode == "extractive" for o in outcomes),
        unanswerable_caught=_mean([float(o.mode == "not_found") for o in unanswerable]),
        answerable_refused=_mean([float(o.mode == "not_found") for o in answerable]),
        citation_precision=_mean(precisions),
        citation_recall=_mean(recalls),
        answer_f1=_mean([token_f1(o.text, o.question.answer) for o in outcomes if o.question.answer]),
        latency_p50_ms=percentile(latencies, 50),
        latency_p95_ms=percentile(latencies, 95),
    )


class SearchesChunks(Protocol):
    """What evaluate needs of retrieval.search.Searcher."""

    def search(self, query: str, k: int = 6) -> list[Hit]: ...


def evaluate(searcher: SearchesChunks, questions: Sequence[Question], indexed: set[str], depth: int = 50) -> EvalReport:
    """Search alone (`searcher.search`, top `depth` chunks), to compare search configurations; it never
    abstains. The bot's own figures come from `qwenbot eval`, which runs the answer pipeline."""
    outcomes = []
    for question in questions:
        started = time.perf_counter()
        hits = searcher.search(question.question, k=depth)
        latency = (time.perf_counter() - started) * 1000
        outcomes.append(Outcome(question, ranked_documents(hits), True, latency))
    return score(outcomes, indexed)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0

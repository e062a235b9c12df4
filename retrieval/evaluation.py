"""Retrieval evaluation at source-document level: Recall@5, MRR@10, nDCG@10 and search latency.

A document's rank is the rank of its best chunk: the ranked chunks are deduplicated to documents
before the cut at k. Questions whose `sources` is empty (the docs do not answer them) are counted
apart and left out of the metrics. Relevance is binary.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
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


@dataclass
class EvalReport:
    questions: int  # all questions in the file
    answerable: int
    unanswerable: int
    recall_at_5: float
    mrr_at_10: float
    ndcg_at_10: float
    latency_p50_ms: float
    latency_p95_ms: float
    missing_sources: list[str]  # sources named by questions but not among the indexed documents

    def to_json(self) -> dict[str, Any]:
        return {
            "questions": self.questions,
            "answerable": self.answerable,
            "unanswerable": self.unanswerable,
            "recall@5": round(self.recall_at_5, 4),
            "mrr@10": round(self.mrr_at_10, 4),
            "ndcg@10": round(self.ndcg_at_10, 4),
            "latency_ms": {"p50": round(self.latency_p50_ms, 2), "p95": round(self.latency_p95_ms, 2)},
            "missing_sources": self.missing_sources,
        }

    def to_text(self) -> str:
        return (
            f"questions: {self.questions} ({self.answerable} answerable, {self.unanswerable} unanswerable, "
            "left out of the metrics)\n"
            f"Recall@5: {self.recall_at_5:.4f}\nMRR@10:   {self.mrr_at_10:.4f}\nnDCG@10:  {self.ndcg_at_10:.4f}\n"
            f"search latency: p50 {self.latency_p50_ms:.1f} ms, p95 {self.latency_p95_ms:.1f} ms"
        )


def load_questions(path: Path) -> list[Question]:
    """Reads QUESTIONS.jsonl: one {"id", "question", "sources": [...], "answer"?} object per line."""
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
        qid = str(raw.get("id", number))
        if qid in seen:
            raise QuestionsError(f"{where}: duplicate id {qid!r}")
        seen.add(qid)
        questions.append(Question(qid, text.strip(), tuple(s.strip().removeprefix("./") for s in sources)))
    if not questions:
        raise QuestionsError(f"{path}: no questions in it")
    return questions


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


# --- the run ----------------------------------------------------------------------------------


class SearchesChunks(Protocol):
    """What evaluate needs of retrieval.search.Searcher."""

    def search(self, query: str, k: int = 6) -> list[Hit]: ...


def evaluate(searcher: SearchesChunks, questions: Sequence[Question], indexed: set[str], depth: int = 50) -> EvalReport:
    """Runs every question through `searcher.search` (top `depth` chunks, enough for 10 documents)."""
    recalls: list[float] = []
    rrs: list[float] = []
    ndcgs: list[float] = []
    latencies: list[float] = []
    missing = sorted({s for q in questions for s in q.sources if s not in indexed})
    for question in questions:
        started = time.perf_counter()
        hits = searcher.search(question.question, k=depth)
        latencies.append((time.perf_counter() - started) * 1000)
        if not question.sources:
            continue
        ranked = ranked_documents(hits)
        relevant = set(question.sources)
        recalls.append(recall_at_k(ranked, relevant, RECALL_K))
        rrs.append(reciprocal_rank(ranked, relevant, RANK_K))
        ndcgs.append(ndcg_at_k(ranked, relevant, RANK_K))
    answerable = len(recalls)
    return EvalReport(
        questions=len(questions),
        answerable=answerable,
        unanswerable=len(questions) - answerable,
        recall_at_5=_mean(recalls),
        mrr_at_10=_mean(rrs),
        ndcg_at_10=_mean(ndcgs),
        latency_p50_ms=percentile(latencies, 50),
        latency_p95_ms=percentile(latencies, 95),
        missing_sources=missing,
    )


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0

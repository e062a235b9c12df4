"""`qwenbot eval`'s run: every question goes the bot's own way, through `AnswerPipeline.retrieve` (and
with answers, `AnswerPipeline.run`), so the figures are the bot's. The metric math is
retrieval/evaluation.py's."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import TextIO

from tqdm import tqdm

from bot.answer.pipeline import AnswerPipeline, Retrieved
from bot.answer.records import Answer, Done, Turn
from retrieval.evaluation import (
    RANK_K,
    AnswerOutcome,
    EvalReport,
    Outcome,
    Question,
    ranked_documents,
    score,
)

# Passages ranked per question: enough for RANK_K documents when a document has several good chunks.
SEARCH_DEPTH = 5 * RANK_K
_PROGRESS_EVERY = 25  # questions between progress lines when stderr is not a terminal
_DETAIL_DOCS = RANK_K


def run_eval(
    pipeline: AnswerPipeline,
    questions: Sequence[Question],
    indexed: set[str],
    *,
    answers: bool = False,
    details: TextIO | None = None,
) -> EvalReport:
    """Runs every question; with `answers`, through the whole pipeline (the configured model) as well.

    details: one JSON line per question is written there (top documents, the decision, the answer).
    """
    outcomes: list[Outcome] = []
    answered: list[AnswerOutcome] = []
    for question in _progress(questions):
        history = [Turn("user" if role == "user" else "assistant", text) for role, text in question.history]
        started = time.perf_counter()
        found = pipeline.retrieve(question.question, history, depth=SEARCH_DEPTH)
        search_ms = (time.perf_counter() - started) * 1000
        outcomes.append(Outcome(question, ranked_documents(found.ranking), found.answerable, search_ms))
        answer = None
        if answers:
            answer = _answer(pipeline, question.question, history, found)
            answered.append(
                AnswerOutcome(
                    question,
                    answer.mode,
                    tuple(answer.cited),
                    answer.text,
                    (time.perf_counter() - started) * 1000,
                )
            )
        if details is not None:
            details.write(json.dumps(_detail(question, found, answer), ensure_ascii=False) + "\n")
    return score(outcomes, indexed, answered if answers else None)


def _answer(pipeline: AnswerPipeline, question: str, history: list[Turn], found: Retrieved) -> Answer:
    done = [e for e in pipeline.run(question, history, found=found) if isinstance(e, Done)]
    return done[-1].answer


def _detail(question: Question, found: Retrieved, answer: Answer | None) -> dict[str, object]:
    best: dict[str, float] = {}
    for hit in found.ranking:  # a document's score is its best passage's
        best.setdefault(hit.path, hit.score)
    line: dict[str, object] = {
        "id": question.id,
        "question": question.question,
        "history": len(question.history),
        "sources": list(question.sources),
        "queries": found.queries,
        "documents": [{"path": p, "score": round(s, 5)} for p, s in list(best.items())[:_DETAIL_DOCS]],
        "decision": {
            "answerable": found.decision.answerable,
            "reason": found.decision.reason,
            "signals": found.decision.signals,
        },
    }
    if answer is not None:
        line["answer"] = {
            "mode": answer.mode,
            "cited": answer.cited,
            "text": answer.text,
            "model_error": answer.model_error,
        }
    return line


def _progress(questions: Sequence[Question]) -> Iterable[Question]:
    if sys.stderr.isatty():
        bar: Iterable[Question] = tqdm(questions, desc="questions", unit="q", file=sys.stderr)  # tqdm is untyped
        return bar
    return _progress_lines(questions)


def _progress_lines(questions: Sequence[Question]) -> Iterator[Question]:
    started = time.monotonic()
    for done, question in enumerate(questions):
        if done and done % _PROGRESS_EVERY == 0:
            print(
                f"qwenbot eval: {done}/{len(questions)} questions, {time.monotonic() - started:.0f} s", file=sys.stderr
            )
        yield question

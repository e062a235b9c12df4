"""Whether the retrieved passages can answer the question: the "not in the docs" decision.

A cosine threshold cannot make it: when a question's source document is missing but its topic is
covered, the best passage is as similar to the question as real answers are (near-domain sets: 0.32-0.82
against answerable ones from 0.39). What does differ is that nothing states the question's specific
terms, so keyword and dense search each grab a different neighbour. The rule therefore reads
scale-free signals, which keep their meaning across corpora and embedding models:

- coverage: the share of the question's terms, weighted by BM25 IDF (rare terms are the specific
  ones), that appear in the top passage;
- agreement: whether the passage dense search ranks first and the one keyword search ranks first
  (among the retrieved ones) come from the same document; "supported": the top document is among
  both sides' first two;
- the reranker's score, when a reranker ran (its scale depends on the reranker, so its threshold is
  a setting); the best dense cosine is reported with the other signals.

The model is asked unless the two sides disagree and coverage is low, or the reranker scores every
passage low. Calibrated with bench/calibrate_abstain.py on near-domain variants of docs_corpus and
SciFact, which also prints how well each signal separates answerable from near-domain questions (none
well enough alone: AUC 0.59-0.89, so a reranker is the way to a sharper decision).

Quoting passages with no model to read them (extractive mode) asks a little more of the top passage
(`quotable`), and quotes only passages of the top passage's document that hold as many of the
question's terms (`passages_to_quote`): on every set bench/bench_extractive.py runs, passages of
other documents were almost never from a source of the question (2-4%).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from bot.answer.prompts import NOT_IN_DOCS
from retrieval.lexical import lexical_text
from retrieval.models import Hit
from retrieval.tokenize import tokenize

# Extractive mode quotes a top passage that holds this many times the minimum coverage, whatever the
# two search sides say of its document.
STRICT_COVERAGE_FACTOR = 2.0


@dataclass(frozen=True)
class AbstainRule:
    min_coverage: float  # below this (with the sides disagreeing), the docs are taken not to hold the answer
    rerank_min: float | None = None  # best reranker score below this: not in the docs (None: no rerank check)


@dataclass(frozen=True)
class Decision:
    answerable: bool
    reason: str  # one line for logs and eval details
    signals: dict[str, float]  # coverage, agree and supported (1/0), dense, rerank (when present), terms


def term_coverage(idf: Mapping[str, float], hit: Hit) -> float:
    """The IDF-weighted share of the question's terms found in a passage (its title and headings
    included; 1.0 when the question has no searchable terms: words cannot tell then)."""
    return _share(idf, lexical_text(hit.title, hit.heading_path, hit.text))


def _share(idf: Mapping[str, float], text: str) -> float:
    total = sum(idf.values())
    if total <= 0:
        return 1.0
    words = set(tokenize(text))
    return sum(weight for term, weight in idf.items() if term in words) / total


def _documents_by(hits: Sequence[Hit], score: Callable[[Hit], float | None]) -> list[str]:
    """Document paths of the hits one side scored, in that side's order."""
    scored = [(s, h.path) for h in hits if (s := score(h)) is not None and s > 0]
    return list(dict.fromkeys(path for _, path in sorted(scored, key=lambda x: -x[0])))


def agreement(hits: Sequence[Hit]) -> tuple[bool, bool]:
    """(agree, supported): whether dense and keyword search put the same document first among the
    retrieved passages; whether the top document is among both sides' first two."""
    dense = _documents_by(hits, lambda h: h.dense_score)
    lexical = _documents_by(hits, lambda h: h.lexical_score)
    if not dense or not lexical:
        return False, False
    return dense[0] == lexical[0], hits[0].path in dense[:2] and hits[0].path in lexical[:2]


def decide(idf: Mapping[str, float], hits: Sequence[Hit], rule: AbstainRule) -> Decision:
    """Whether to answer from `hits`, given the IDF of the question's terms (`Searcher.term_idf`)."""
    if not hits:
        return Decision(False, "nothing found", {})
    coverage = term_coverage(idf, hits[0])
    agree, supported = agreement(hits)
    signals = {
        "coverage": round(coverage, 4),
        "agree": float(agree),
        "supported": float(supported),
        "dense": round(max((h.dense_score for h in hits if h.dense_score is not None), default=0.0), 4),
        "terms": float(len(idf)),
    }
    reranked = [h.rerank_score for h in hits if h.rerank_score is not None]
    if reranked:
        signals["rerank"] = round(max(reranked), 4)
        if rule.rerank_min is not None and max(reranked) < rule.rerank_min:
            return Decision(False, f"best reranker score {max(reranked):.3g} < {rule.rerank_min:g}", signals)
    if not agree and coverage < rule.min_coverage:
        return Decision(
            False,
            f"dense and keyword search disagree and the top passage holds {coverage:.0%} of the question's terms",
            signals,
        )
    return Decision(True, "agree" if agree else f"coverage {coverage:.0%}", signals)


def quotable(idf: Mapping[str, float], hits: Sequence[Hit], rule: AbstainRule) -> Decision:
    """Whether the top passage answers clearly enough to be quoted with no model to read it (extractive
    mode): the ordinary decision, and then one of
    - the passage holds STRICT_COVERAGE_FACTOR times the rule's minimum share of the question's terms;
    - it holds the minimum, and its document is among both search sides' first two;
    - it is a section whose heading (the document's title and headings) and text both match the
      question: a term of the question in the heading, the minimum share in the text.
    Much weaker than the first rule (both conditions at once), which refused 21-58% of the answerable
    questions of the sets bench/bench_extractive.py runs: a team without a model gets no answer then.
    """
    decision = decide(idf, hits, rule)
    if not decision.answerable:
        return decision
    top = hits[0]
    coverage, supported = decision.signals["coverage"], decision.signals["supported"] == 1.0
    heading, text = _share(idf, f"{top.title}\n{top.heading_path}"), _share(idf, top.text)
    signals = {**decision.signals, "heading": round(heading, 4), "text": round(text, 4)}
    if coverage >= STRICT_COVERAGE_FACTOR * rule.min_coverage:
        return Decision(True, f"coverage {coverage:.0%}", signals)
    if supported and coverage >= rule.min_coverage:
        return Decision(True, f"coverage {coverage:.0%}, both sides rank its document high", signals)
    if heading > 0 and text >= rule.min_coverage:
        return Decision(True, "its section's heading and text match the question", signals)
    return Decision(False, f"no passage answers clearly enough to quote: coverage {coverage:.0%}", signals)


def passages_to_quote(idf: Mapping[str, float], hits: Sequence[Hit], limit: int) -> list[Hit]:
    """The top passage, then (up to `limit` in all) the passages of the same document that hold at least
    as much of the question's terms, in search order: what belongs to the question, not what is near."""
    if not hits:
        return []
    top, bar = hits[0], term_coverage(idf, hits[0])
    rest = [h for h in hits[1:] if h.path == top.path and term_coverage(idf, h) >= bar]
    return [top, *rest][:limit]


# Text the marker can open with and still count as "nothing else said": a model may preface the marker
# with a few words ("Sorry: NOT_IN_DOCS"). Until this much other text has come, output is held back.
_MARKER_HOLD_CHARS = 40


class MarkerFilter:
    """Finds the model's NOT_IN_DOCS marker (the system prompt asks for it) in streamed text.

    The opening of the answer is held back until the marker is ruled out: seen there, `not_found` is set
    and nothing is shown. A marker that comes later, after real text, is dropped and the text is kept.
    """

    def __init__(self) -> None:
        self.not_found = False
        self._held = ""
        self._released = False  # the opening passed without the marker

    def feed(self, text: str) -> str:
        if self.not_found:
            return ""
        self._held += text
        if not self._released:
            if self._opens_with_marker():
                self.not_found, self._held = True, ""
                return ""
            if NOT_IN_DOCS not in self._held and len(self._held.strip()) < len(NOT_IN_DOCS) + _MARKER_HOLD_CHARS:
                return ""
            self._released = True
        text = _MARKER_LATER.sub("", self._held)
        # A marker may be arriving token by token: hold back its start, and the whitespace before it
        # (trailing whitespace may be followed by one).
        cut = len(text[: len(text) - _partial_marker(text)].rstrip())
        self._held = text[cut:]
        return text[:cut]

    def flush(self) -> str:
        """The held text at the end of the answer (empty when it was the marker)."""
        if not self._released and self._opens_with_marker():
            self.not_found = True
        rest, self._held = ("" if self.not_found else self._held), ""
        return rest

    def _opens_with_marker(self) -> bool:
        before, marker, _ = self._held.partition(NOT_IN_DOCS)
        return bool(marker) and len(before.strip()) < _MARKER_HOLD_CHARS


_MARKER_LATER = re.compile(r"\s*" + re.escape(NOT_IN_DOCS))


def _partial_marker(text: str) -> int:
    """Length of the longest end of `text` that starts the marker."""
    for n in range(min(len(text), len(NOT_IN_DOCS) - 1), 0, -1):
        if NOT_IN_DOCS.startswith(text[-n:]):
            return n
    return 0

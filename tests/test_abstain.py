"""The "not in the docs" decision: its signals on real retrieval, and the model's own marker."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.paths import CORPUS_DIR

from bot.answer.abstain import (
    AbstainRule,
    MarkerFilter,
    agreement,
    decide,
    passages_to_quote,
    quotable,
    term_coverage,
)
from bot.answer.prompts import NOT_IN_DOCS
from bot.settings import load_settings
from retrieval.config import IndexConfig
from retrieval.embeddings import Embedder
from retrieval.indexer import Indexer
from retrieval.models import Hit
from retrieval.search import Searcher

RULE = AbstainRule(min_coverage=0.5)
NEAR_DOMAIN_DROPPED = {
    "engineering/architecture-overview.pdf",
    "engineering/incident-response.md",
    "engineering/runbooks/database-failover.md",
    "engineering/runbooks/kafka-consumer-lag.md",
    "hr/benefits-guide-2026.pdf",
    "hr/benefits.md",
    "hr/expenses.md",
    "hr/referral-program.md",
    "hr/vacation.md",
    "it-security/acceptable-use-policy.pdf",
    "it-security/data-classification.md",
    "onboarding/glossary.md",
    "product/feature-flags.md",
}


def hit(path: str, text: str, dense: float | None, lexical: float | None, rerank: float | None = None) -> Hit:
    return Hit(
        chunk_id=f"{path}-{text[:8]}",
        text=text,
        score=0.0,
        title="",
        heading_path="",
        path=path,
        dense_score=dense,
        lexical_score=lexical,
        rerank_score=rerank,
    )


def test_idf_is_higher_for_rarer_terms_and_highest_for_unknown_ones(corpus_index: Path, embedder: Embedder) -> None:
    with Searcher(IndexConfig(index_dir=corpus_index), embedder) as searcher:
        idf = searcher.term_idf("How many vacation days? vacation zyzzyvaquux")
    assert list(idf) == ["mani", "vacat", "day", "zyzzyvaquux"]  # stemmed, stop words out, each term once
    assert idf["zyzzyvaquux"] > idf["vacat"] > idf["day"] > 0


def test_coverage_weights_terms_by_idf() -> None:
    idf = {"park": 3.0, "staff": 1.0}
    assert term_coverage(idf, hit("b.md", "Parking for staff is free.", 0.4, 1.0)) == 1.0
    assert term_coverage(idf, hit("a.md", "All staff must badge in.", 0.5, 2.0)) == pytest.approx(0.25)
    assert term_coverage({}, hit("a.md", "anything", 0.5, 2.0)) == 1.0  # no searchable terms: words cannot tell


def test_agreement_compares_each_sides_best_documents() -> None:
    same = [hit("a.md", "x", 0.6, 5.0), hit("b.md", "y", 0.5, 2.0)]
    assert agreement(same) == (True, True)
    split = [hit("a.md", "x", 0.6, 1.0), hit("b.md", "y", 0.5, 3.0), hit("c.md", "z", 0.4, 0.5)]
    assert agreement(split) == (False, True)  # a.md is second for keyword search
    assert agreement([hit("a.md", "x", 0.6, None), hit("b.md", "y", 0.5, None)]) == (False, False)


def test_decision_holds_back_when_the_sides_disagree_and_coverage_is_low() -> None:
    idf = {"park": 3.0, "staff": 1.0}
    disagree = [hit("a.md", "staff", 0.6, 1.0), hit("b.md", "staff", 0.5, 3.0), hit("c.md", "other", 0.4, 2.0)]
    held = decide(idf, disagree, RULE)
    assert not held.answerable and held.signals["coverage"] == 0.25 and held.signals["agree"] == 0.0
    assert "disagree" in held.reason
    covered = [hit("a.md", "staff parking", 0.6, 1.0), hit("b.md", "staff", 0.5, 3.0)]
    assert decide(idf, covered, RULE).answerable
    agree = [hit("a.md", "staff", 0.6, 3.0), hit("b.md", "staff", 0.5, 1.0)]
    assert decide(idf, agree, RULE).answerable
    assert not decide(idf, [], RULE).answerable


def test_a_passage_is_quoted_without_a_model_only_when_it_answers_clearly() -> None:
    idf = {"park": 3.0, "staff": 1.0}
    # The sides agree, but the top passage holds a quarter of the terms: the model may be asked, no more.
    agree = [hit("a.md", "staff", 0.6, 3.0), hit("b.md", "staff", 0.5, 1.0)]
    assert decide(idf, agree, RULE).answerable and not quotable(idf, agree, RULE).answerable
    # The minimum share, in a document both sides rank in their first two.
    supported = [hit("a.md", "parking rules", 0.6, 3.0), hit("b.md", "staff", 0.5, 1.0)]
    assert quotable(idf, supported, RULE).answerable
    # Twice the minimum, whatever the sides say of its document.
    unsupported = [hit("b.md", "staff", 0.6, None), hit("c.md", "x", 0.5, None), hit("a.md", "staff parking", 0.3, 3.0)]
    assert not agreement(unsupported)[1]
    assert quotable(idf, unsupported[2:] + unsupported[:2], RULE).answerable


def test_a_section_whose_heading_and_text_match_the_question_is_quoted() -> None:
    idf = {"park": 3.0, "staff": 1.0, "bike": 4.0, "fee": 4.0}
    rule = AbstainRule(min_coverage=0.4)
    section = dataclasses.replace(hit("a.md", "Staff bikes go in the cellar.", 0.3, 3.0), heading_path="Parking")
    hits = [section, hit("b.md", "x", 0.6, None), hit("c.md", "y", 0.5, None)]
    decision = quotable(idf, hits, rule)  # 67% of the terms (< 2 x 40%), its document ranked low by dense search
    assert decision.answerable and "heading and text match" in decision.reason
    assert decision.signals["heading"] == 0.25 and decision.signals["text"] == pytest.approx(0.4167, abs=1e-4)
    nothing_in_the_text = [dataclasses.replace(section, text="Ask reception."), *hits[1:]]
    assert not quotable(idf, nothing_in_the_text, rule).answerable


def test_only_passages_of_the_top_document_that_match_as_well_are_quoted() -> None:
    idf = {"park": 3.0, "staff": 1.0}
    top = hit("a.md", "staff parking: level -1", 0.6, 3.0)
    other_doc = hit("b.md", "staff parking is free", 0.5, 2.0)
    same_doc = hit("a.md", "parking for staff", 0.4, 1.0)
    weaker = hit("a.md", "parking", 0.3, 0.5)
    assert passages_to_quote(idf, [top, other_doc, same_doc, weaker], 3) == [top, same_doc]
    assert passages_to_quote(idf, [top, same_doc], 1) == [top]
    assert passages_to_quote(idf, [], 3) == []


def test_reranker_score_below_its_threshold_holds_back() -> None:
    idf = {"park": 3.0}
    hits = [hit("a.md", "parking", 0.6, 3.0, rerank=-2.5), hit("b.md", "x", 0.5, 1.0, rerank=-4.0)]
    assert decide(idf, hits, RULE).answerable  # no rerank threshold configured
    held = decide(idf, hits, AbstainRule(0.5, rerank_min=0.0))
    assert not held.answerable and held.signals["rerank"] == -2.5 and "reranker" in held.reason


@pytest.fixture(scope="module")
def near_domain_searcher(
    tmp_path_factory: pytest.TempPathFactory, corpus_index: Path, embedder: Embedder
) -> Iterator[Searcher]:
    """docs_corpus without some documents (as bench/make_near_domain.py --every 8 drops them): their
    topics stay, their answers are gone. The session's index, copied, with those documents removed."""
    index_dir = tmp_path_factory.mktemp("near") / "index"
    shutil.copytree(corpus_index, index_dir, ignore=shutil.ignore_patterns(".lock"))
    # excluded (the files are still on disk, so `remove` would refuse them): the next run drops them
    config = IndexConfig(index_dir=index_dir, exclude=tuple(sorted(NEAR_DOMAIN_DROPPED)))
    stats = Indexer(config, embedder).run([CORPUS_DIR], progress=False)
    assert stats.removed == len(NEAR_DOMAIN_DROPPED) and stats.added == 0, stats
    with Searcher(config, embedder) as searcher:
        yield searcher


@pytest.mark.parametrize(
    ("question", "answerable"),
    [
        ("whats the max replication lag before we promote a replica", False),  # its runbook was removed
        ("wat does IC mean", False),  # the glossary was removed
        ("how many paid sick days do we get", True),
        ("when is hack week", True),
    ],
)
def test_near_domain_questions_are_held_back_answerable_ones_not(
    near_domain_searcher: Searcher, question: str, answerable: bool
) -> None:
    hits = near_domain_searcher.search(question, k=6)
    decision = decide(
        near_domain_searcher.term_idf(question), hits, AbstainRule(load_settings(None).abstain_min_coverage)
    )
    assert decision.answerable is answerable, decision


def stream(pieces: list[str]) -> tuple[str, bool]:
    marker = MarkerFilter()
    text = "".join(marker.feed(p) for p in pieces) + marker.flush()
    return text, marker.not_found


def test_marker_at_the_start_is_found_whatever_the_chunking() -> None:
    for reply in (NOT_IN_DOCS, f"  {NOT_IN_DOCS}\n", f"Sorry: {NOT_IN_DOCS}. The sources cover leave only."):
        for cut in range(1, len(reply)):
            assert stream([reply[:cut], reply[cut:]]) == ("", True)


def test_marker_after_real_text_is_dropped_and_the_text_kept() -> None:
    text = "You get 25 days of paid vacation a year [1], booked in Workday at least two weeks ahead."
    reply = f"{text} {NOT_IN_DOCS}"
    for cut in range(1, len(reply)):
        assert stream([reply[:cut], reply[cut:]]) == (text, False)
    # Text that only looks like the start of the marker is kept.
    assert stream([text, " NOT_IN", "TERESTING"]) == (text + " NOT_INTERESTING", False)
    assert stream(["25 days [1]."]) == ("25 days [1].", False)

"""Hybrid search over a real index: fusion, filters (never outside scope), hit fields, freshness."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from retrieval import search
from retrieval.config import IndexConfig
from retrieval.errors import IndexMissingError
from retrieval.fusion import fuse, fuse_top, top_k_indices
from retrieval.indexer import Indexer
from retrieval.lexical import LexicalIndex, path_in_scope, saved_stamp
from retrieval.models import SearchFilter
from retrieval.search import Searcher
from retrieval.store import open_collection, read_stamp

DOCS = {
    "hr/vacation.md": (
        "Vacation policy",
        ("hr", "leave"),
        {
            "Allowance": "Full-time employees get 25 vacation days per calendar year.",
            "Carry over": "Up to 5 unused vacation days carry over to the next year.",
        },
    ),
    "hr-archive/vacation-2019.md": (
        "Vacation policy (2019, superseded)",
        ("archive",),
        {
            "Allowance": "Employees got 20 vacation days per year until 2019.",
        },
    ),
    "eng/runbooks/rollback.md": (
        "Rolling back a deploy",
        ("eng", "oncall"),
        {
            "Steps": "Run shipit rollback --to previous, then watch the error rate dashboard for ten minutes.",
            "Gasket": "The XK-42 gasket alarm in the data centre means the chiller needs a reset.",
        },
    ),
    "eng/oncall.md": (
        "On-call handbook",
        ("eng", "oncall"),
        {
            "Paging": "The on-call engineer acknowledges a page within 5 minutes.",
            "Vacation": "Swap your on-call shift before you take vacation days.",
        },
    ),
    "it/laptops.md": (
        "Laptops",
        ("it",),
        {
            "Refresh": "Laptops are replaced every three years; order one through the IT portal.",
        },
    ),
}


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory, embedder) -> IndexConfig:
    docs = tmp_path_factory.mktemp("docs")
    for rel, (title, tags, sections) in DOCS.items():
        path = docs / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        body = "\n\n".join(f"## {h}\n\n{t}" for h, t in sections.items())
        path.write_text(
            f"---\ntitle: {title}\ntags: [{', '.join(tags)}]\nurl: https://wiki.example/{rel}\n"
            f"updated: 2026-02-0{len(tags)}\n---\n\n{body}\n",
            encoding="utf-8",
        )
    config = IndexConfig(index_dir=tmp_path_factory.mktemp("index"))
    assert Indexer(config, embedder).run([docs], progress=False).failed == 0
    return config


@pytest.fixture(scope="module")
def searcher(index: IndexConfig, embedder):
    with Searcher(index, embedder) as s:
        yield s


def test_fuse_is_weighted_reciprocal_rank() -> None:
    fused = fuse([(1.0, ["a", "b"]), (2.0, ["b", "c"])], rrf_k=10)
    assert fused == pytest.approx({"a": 1 / 11, "b": 1 / 12 + 2 / 11, "c": 2 / 12})
    assert fuse([(0.0, ["a"]), (1.0, ["b"])], rrf_k=60) == pytest.approx({"b": 1 / 61})


def test_fuse_top_is_the_best_fused_ids_with_their_scores() -> None:
    rankings = [(1.0, ["a", "b", "c"]), (1.0, ["c", "d"])]
    fused = fuse(rankings, rrf_k=10)
    top = fuse_top(rankings, rrf_k=10, k=3)
    assert [cid for cid, _ in top] == ["c", "a", "b"]  # a and d tie at 1/11: the first named goes first
    assert all(score == fused[cid] for cid, score in top)
    assert fuse_top(rankings, rrf_k=10, k=0) == [] and len(fuse_top(rankings, rrf_k=10, k=99)) == 4


def test_top_k_indices_is_the_best_first() -> None:
    scores = np.array([0.5, 2.0, 0.5, 3.0, 0.5, -1.0], dtype=np.float32)
    assert top_k_indices(scores, 2).tolist() == [3, 1]
    assert top_k_indices(scores, 99).tolist() == [3, 1, 0, 2, 4, 5]  # all kept: ties in position order
    assert top_k_indices(scores, 0).tolist() == [] and top_k_indices(scores[:0], 3).tolist() == []
    rng = np.random.default_rng(7)
    many = rng.integers(0, 20, 5000).astype(np.float64)  # many ties
    for k in (1, 17, 500, 4999, 5000):
        top = top_k_indices(many, k)
        assert len(set(top.tolist())) == k
        assert many[top].tolist() == sorted(many, reverse=True)[:k]


def test_hits_carry_their_source(searcher: Searcher, embedder) -> None:
    hits = searcher.search("how many vacation days do I get per year", k=3)
    assert hits and hits[0].path == "hr/vacation.md"
    top = hits[0]
    assert top.title == "Vacation policy" and top.heading_path == "Allowance"
    assert top.url == "https://wiki.example/hr/vacation.md" and top.updated == "2026-02-02"
    assert top.tags == ("hr", "leave") and "25 vacation days" in top.text
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    # dense_score is the cosine between the query and the embedded chunk text, for every hit.
    stored = open_collection(searcher.config).get(ids=[top.chunk_id], include=["embeddings"])["embeddings"][0]
    cosine = float(np.dot(embedder.encode(["how many vacation days do I get per year"])[0], stored))
    assert top.dense_score == pytest.approx(cosine, abs=1e-4)
    assert all(h.dense_score is not None for h in hits)


def test_lexical_side_finds_rare_identifiers(searcher: Searcher) -> None:
    hits = searcher.search("XK-42", k=2)
    assert hits[0].path == "eng/runbooks/rollback.md" and hits[0].heading_path == "Gasket"
    assert hits[0].lexical_score is not None and hits[0].lexical_score > 0


@pytest.mark.parametrize("strategy", ["over-fetch", "exact over the scope's vectors"])
def test_filters_never_leave_the_scope(searcher: Searcher, strategy: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Broad scopes are searched by over-fetching and filtering, narrow ones exactly: test both.
    monkeypatch.setattr(search, "_OVERFETCH_MIN_FRACTION", 0.0 if strategy == "over-fetch" else 1.01)
    query = "vacation days per year"
    for flt, allowed in [
        (SearchFilter(path_prefixes=("eng",)), lambda h: h.path.startswith("eng/")),
        (SearchFilter(path_prefixes=("hr/",)), lambda h: h.path.startswith("hr/")),
        (SearchFilter(tags=("OnCall",)), lambda h: "oncall" in h.tags),
        (
            SearchFilter(path_prefixes=("it",), tags=("archive",)),
            lambda h: h.path.startswith("it/") or "archive" in h.tags,
        ),
    ]:
        hits = searcher.search(query, k=10, filter=flt)
        assert hits, flt
        assert all(allowed(h) for h in hits), (flt, [h.path for h in hits])
        assert all(allowed(h) for h in searcher.dense_search(query, k=10, filter=flt))
    # "hr" is a folder prefix: it does not reach into "hr-archive/".
    assert {h.path for h in searcher.search(query, k=10, filter=SearchFilter(path_prefixes=("hr",)))} == {
        "hr/vacation.md"
    }
    assert searcher.search(query, filter=SearchFilter(path_prefixes=("finance",))) == []
    assert searcher.search(query, filter=SearchFilter(tags=("nope",))) == []


def test_path_prefix_semantics() -> None:
    assert path_in_scope("hr/a.md", ("hr",)) and path_in_scope("hr/a.md", ("./hr/",))
    assert path_in_scope("hr/a.md", ("hr/a.md",)) and path_in_scope("x.md", ("/",))
    assert not path_in_scope("hr-old/a.md", ("hr",)) and not path_in_scope("hr/a.md", ())


def test_stats_and_saved_bm25(searcher: Searcher, index: IndexConfig) -> None:
    info = searcher.stats()
    assert info.documents == len(DOCS) and info.chunks == 8
    assert info.embedding_model == index.embedding_model and info.last_indexed
    # The BM25 index on disk is the one for the collection's current stamp: no rebuild at startup.
    stamp = read_stamp(open_collection(index).metadata or {}).value
    assert saved_stamp(index.index_dir / "bm25") == stamp
    saved = LexicalIndex.load(index.index_dir / "bm25")
    assert saved is not None and len(saved) == 8


def test_empty_and_missing_index(tmp_path: Path, embedder) -> None:
    with pytest.raises(IndexMissingError, match="qwenbot index"):
        Searcher(IndexConfig(index_dir=tmp_path / "never-indexed"), embedder)
    empty = tmp_path / "empty-docs"
    empty.mkdir()
    config = IndexConfig(index_dir=tmp_path / "index")
    Indexer(config, embedder).run([empty], progress=False)
    with Searcher(config, embedder) as s:
        assert s.search("anything") == [] and s.dense_search("anything") == []
        assert s.stats().chunks == 0


def test_searcher_sees_an_in_process_reindex(tmp_path: Path, embedder, write_doc) -> None:
    docs = tmp_path / "docs"
    write_doc(docs, "a.md", "Alpha", {"S": "The alpha service owns billing."})
    config = IndexConfig(index_dir=tmp_path / "index", lexical_refresh_seconds=0)
    Indexer(config, embedder).run([docs], progress=False)
    with Searcher(config, embedder) as s:  # holds the lock, as the bot does
        assert all(h.path == "a.md" for h in s.search("zephyrine quota"))
        write_doc(docs, "b.md", "Beta", {"S": "The zephyrine quota is 40 requests per second."})
        Indexer(config, embedder).run([docs], progress=False)  # same process: the lock is re-entrant
        hits = s.search("zephyrine quota", k=1)
        assert hits[0].path == "b.md" and hits[0].lexical_score

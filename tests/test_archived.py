"""Archived documents: recognised from front matter, kept in the index, ranked below current ones unless
the question is about the past, and labelled as archived wherever sources are shown."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from bot.answer.prompts import ARCHIVED_NOTE, DEFAULT_SYSTEM_PROMPT, build_prompt, number_by_document
from bot.answer.records import Answer, Source
from bot.cli import main as cli
from bot.slack.render.answer import trailer_blocks
from retrieval import index_write
from retrieval.archive import DEMOTION, asks_about_past, candidate_pool, demote_archived
from retrieval.config import IndexConfig
from retrieval.embeddings import Embedder
from retrieval.errors import LoadError
from retrieval.indexer import Indexer
from retrieval.loaders import load_document
from retrieval.models import Hit
from retrieval.search import Searcher

# --- front matter ---------------------------------------------------------------------------------


def _load(tmp_path: Path, front: str, name: str = "doc.md") -> bool:
    path = tmp_path / name
    path.write_text(f"---\ntitle: A page\n{front}\n---\n\n# A page\n\nSome text.\n", encoding="utf-8")
    return load_document(path, name).archived


@pytest.mark.parametrize(
    "front",
    [
        "status: archived",
        "status: Deprecated",
        "status: SUPERSEDED",
        "status: legacy",
        "status: deprecated (use the Tailscale guide)",
        "superseded_by: it-security/vpn-guide.md",
        "tags: [it, vpn, archived]",
        "tags: [it, Legacy]",
        "tags: it, DEPRECATED",
    ],
)
def test_front_matter_marks_a_document_archived(tmp_path: Path, front: str) -> None:
    assert _load(tmp_path, front)


@pytest.mark.parametrize(
    "front",
    ["", "status: current", "status: draft", "superseded_by:", "superseded_by: ''", "tags: [it, archive-of-links]"],
)
def test_other_documents_are_current(tmp_path: Path, front: str) -> None:
    assert not _load(tmp_path, front)


def test_a_structured_status_is_a_load_error(tmp_path: Path) -> None:
    with pytest.raises(LoadError, match="'status' must be text"):
        _load(tmp_path, "status: [archived]")


def test_rst_status_field_and_plain_text(tmp_path: Path) -> None:
    rst = tmp_path / "old.rst"
    rst.write_text(":Status: Deprecated\n:Owner: IT\n\nOld setup\n=========\n\nText.\n", encoding="utf-8")
    assert load_document(rst, "old.rst").archived
    txt = tmp_path / "notes.txt"
    txt.write_text("Notes\n\nstatus: archived\n", encoding="utf-8")  # plain text has no front matter
    assert not load_document(txt, "notes.txt").archived


# --- the index ------------------------------------------------------------------------------------

SECTIONS = {"Connect": "Install Tailscale from Self Service and sign in with Okta to get VPN access."}


def _archived_paths(config: IndexConfig, embedder: Embedder, query: str) -> dict[str, bool]:
    with Searcher(config, embedder) as searcher:
        return {h.path: h.archived for h in searcher.search(query, k=10)}


def test_archived_flag_reaches_the_index_and_follows_front_matter_edits(
    tmp_path: Path, embedder: Embedder, write_doc
) -> None:
    docs, config = tmp_path / "docs", IndexConfig(index_dir=tmp_path / "index")
    write_doc(docs, "vpn.md", "VPN guide", SECTIONS)
    write_doc(docs, "vpn-old.md", "VPN guide (OpenVPN)", SECTIONS, tags=("vpn", "archived"))
    Indexer(config, embedder).run([docs], progress=False)
    assert _archived_paths(config, embedder, "VPN access") == {"vpn.md": False, "vpn-old.md": True}

    write_doc(docs, "vpn.md", "VPN guide", SECTIONS, tags=("deprecated",))  # only the front matter changes
    stats = Indexer(config, embedder).run([docs], progress=False)
    assert (stats.updated, stats.chunks_embedded) == (1, 0)
    assert _archived_paths(config, embedder, "VPN access") == {"vpn.md": True, "vpn-old.md": True}


def test_an_index_built_before_the_flag_existed_gets_it_without_re_embedding(
    tmp_path: Path, embedder: Embedder, write_doc, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs, config = tmp_path / "docs", IndexConfig(index_dir=tmp_path / "index")
    write_doc(docs, "vpn-old.md", "VPN guide (OpenVPN)", SECTIONS, tags=("archived",))
    with monkeypatch.context() as old:  # the indexer as it was: file hashes without a version, no flag
        old.setattr(index_write, "METADATA_VERSION", b"")
        chunk_metadata = index_write.chunk_metadata
        old.setattr(
            index_write,
            "chunk_metadata",
            lambda *a: {k: v for k, v in chunk_metadata(*a).items() if k != "archived"},
        )
        Indexer(config, embedder).run([docs], progress=False)
    assert _archived_paths(config, embedder, "VPN access") == {"vpn-old.md": False}

    stats = Indexer(config, embedder).run([docs], progress=False)  # the same, unchanged file
    assert (stats.updated, stats.unchanged, stats.chunks_embedded) == (1, 0, 0)
    assert _archived_paths(config, embedder, "VPN access") == {"vpn-old.md": True}
    assert Indexer(config, embedder).run([docs], progress=False).unchanged == 1  # once only


# --- ranking --------------------------------------------------------------------------------------


def _hit(path: str, score: float, archived: bool = False) -> Hit:
    return Hit(chunk_id=path, text="", score=score, title=path, heading_path="", path=path, archived=archived)


def test_archived_hit_ranks_below_current_hits_with_a_comparable_score() -> None:
    hits = [_hit("old.md", 0.0328, archived=True), _hit("near.md", 0.0300), _hit("far.md", 0.0200)]
    ranked = demote_archived(hits, "how do I get VPN access?")
    # near.md is within the DEMOTION ratio of the archived score, far.md is not.
    assert [h.path for h in ranked] == ["near.md", "old.md", "far.md"]
    assert ranked[1].score == pytest.approx(0.0328 * DEMOTION) and ranked[1].archived
    at_the_boundary = [_hit("old.md", 0.0300, archived=True), _hit("tie.md", 0.0300 * DEMOTION)]
    assert [h.path for h in demote_archived(at_the_boundary, "vpn")] == ["tie.md", "old.md"]


def test_only_match_is_still_found_and_current_results_are_untouched() -> None:
    only = [_hit("old.md", 0.03, archived=True)]
    assert [h.path for h in demote_archived(only, "vpn")] == ["old.md"]
    current = [_hit("a.md", 0.03), _hit("b.md", 0.02)]
    assert demote_archived(current, "vpn") == current


def test_questions_about_the_past_are_not_demoted() -> None:
    hits = [_hit("travel-2022.md", 0.0328, archived=True), _hit("travel.md", 0.0320)]
    for question in (
        "what was the 2022 per diem?",
        "how did the old VPN work?",
        "previous pricing",
        "where is the legacy OpenVPN guide?",
        "the per diem we used to get",
    ):
        assert asks_about_past(question), question
        assert demote_archived(hits, question) == hits
    this_year = date.today().year
    for question in (
        "how do I get VPN access?",
        f"public holidays in {this_year}",
        f"what changes in {this_year + 1}?",
        "a $2000 budget for travel",
        "what does hold mean",
    ):
        assert not asks_about_past(question), question
    assert asks_about_past("holidays in 2025", today=date(2026, 1, 5))
    assert not asks_about_past("holidays in 2026", today=date(2026, 1, 5))


def test_candidate_pool_keeps_what_demotion_can_lift_into_the_top_k() -> None:
    fused = [(f"c{i}", 0.0330 - 0.0005 * i) for i in range(20)]  # 0.0330, 0.0325, ... 0.0235
    floor = fused[2][1] * DEMOTION  # k = 3
    pool = candidate_pool(fused, 3, "vpn access")
    assert pool == [f for f in fused if f[1] >= floor] and len(pool) > 3
    assert candidate_pool(fused, 3, "the old vpn") == fused[:3]  # nothing is demoted: no extra work
    assert candidate_pool(fused[:2], 3, "vpn") == fused[:2] and candidate_pool([], 3, "vpn") == []


def test_search_puts_the_current_document_first_on_a_real_index(tmp_path: Path, embedder: Embedder, write_doc) -> None:
    docs, config = tmp_path / "docs", IndexConfig(index_dir=tmp_path / "index")
    old = {"Getting VPN access": "To get VPN access, download the OpenVPN profile and connect to the VPN server."}
    write_doc(docs, "vpn-old.md", "VPN access guide", old, tags=("vpn", "legacy"))
    write_doc(docs, "vpn.md", "VPN guide", SECTIONS, tags=("vpn",))
    Indexer(config, embedder).run([docs], progress=False)
    with Searcher(config, embedder) as searcher:
        assert [h.path for h in searcher.dense_search("how do I get VPN access?", k=2)][0] == "vpn-old.md"
        assert [h.path for h in searcher.search("how do I get VPN access?", k=2)] == ["vpn.md", "vpn-old.md"]
        assert [h.path for h in searcher.search("how did the old VPN access work?", k=2)][0] == "vpn-old.md"


# --- docs_corpus ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus_searcher(corpus_index: Path, embedder: Embedder) -> Iterator[Searcher]:
    with Searcher(IndexConfig(index_dir=corpus_index), embedder) as s:
        yield s


def _documents(searcher: Searcher, question: str) -> list[tuple[str, bool]]:
    seen: dict[str, bool] = {}
    for hit in searcher.search(question, k=6):
        seen.setdefault(hit.path, hit.archived)
    return list(seen.items())


@pytest.mark.parametrize(
    ("question", "current", "archived"),
    [
        ("how do I get VPN access?", "it-security/vpn-guide.md", "it-security/vpn-guide-legacy.md"),
        ("what's the hotel cap in new york?", "hr/travel-policy.md", "hr/travel-policy-2022.md"),
        ("what are the prices of our plans?", "product/pricing-tiers.md", "product/pricing-2023.md"),
    ],
)
def test_docs_corpus_current_document_comes_first(
    corpus_searcher: Searcher, question: str, current: str, archived: str
) -> None:
    docs = _documents(corpus_searcher, question)
    assert docs[0] == (current, False)
    assert all(flag for path, flag in docs if path == archived)  # labelled, where it is still shown


def test_docs_corpus_past_question_finds_the_archived_document(corpus_searcher: Searcher) -> None:
    docs = _documents(corpus_searcher, "what was the 2022 per diem for international trips?")
    assert docs[0] == ("hr/travel-policy-2022.md", True)


def test_docs_corpus_questions_file_has_these_cases() -> None:
    questions = Path(__file__).resolve().parent.parent / "docs_corpus" / "questions.jsonl"
    by_question = {q["question"]: q["sources"] for q in map(json.loads, questions.read_text().splitlines())}
    assert by_question["how do I get VPN access?"] == ["it-security/vpn-guide.md"]
    assert by_question["what was the 2022 per diem for international trips?"] == ["hr/travel-policy-2022.md"]


# --- where sources are shown ----------------------------------------------------------------------


def test_prompt_marks_archived_sources_for_the_model(corpus_searcher: Searcher) -> None:
    question = "what was the 2022 per diem for international trips?"
    hits = corpus_searcher.search(question, k=6)
    prompt = build_prompt(question, hits, [], DEFAULT_SYSTEM_PROMPT, 6000)
    text = prompt.messages[-1]["content"]
    lines = {s.hits[0].path: f"[{s.n}] {s.hits[0].title} (" for s in prompt.sources}
    old = next(line for line in text.splitlines() if line.startswith(lines["hr/travel-policy-2022.md"]))
    assert old.endswith(f", {ARCHIVED_NOTE})")
    new = next(line for line in text.splitlines() if line.startswith(lines["hr/travel-policy.md"]))
    assert "ARCHIVED" not in new
    assert "ARCHIVED" in prompt.messages[0]["content"]  # the system prompt says what the mark means
    sources = {s.path: s.archived for s in (n.to_source() for n in number_by_document(hits))}
    assert sources["hr/travel-policy-2022.md"] and not sources["hr/travel-policy.md"]


def test_slack_sources_label_archived_documents() -> None:
    old = Source(1, "VPN Setup (OpenVPN) — LEGACY", "it-security/vpn-guide-legacy.md", "Overview", archived=True)
    new = Source(
        2, "VPN Guide (Tailscale)", "it-security/vpn-guide.md", "Install and connect", url="https://x.example/vpn"
    )
    answer = Answer(text="Use Tailscale [2]; OpenVPN is gone [1].", mode="generated", sources=[old, new])
    blocks = trailer_blocks(answer, 7, stale_days=365, today=date(2026, 5, 1))
    lines = blocks[0]["text"]["text"].splitlines()
    assert lines[1].startswith("[1] ") and "(archived)" in lines[1]
    assert lines[2].startswith("[2] ") and "(archived)" not in lines[2]


def test_ask_labels_archived_sources(env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    question = "what was the 2022 per diem for international trips?"
    assert cli(["ask", question]) == 0
    sources = capsys.readouterr().out.partition("\nSources:\n")[2].splitlines()
    old = next(line for line in sources if "hr/travel-policy-2022.md" in line)
    assert "(archived)" in old and all("(archived)" not in line for line in sources if line != old)

    assert cli(["ask", question, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    flags = {s["path"]: s["archived"] for s in result["sources"]}
    assert flags.pop("hr/travel-policy-2022.md") is True and not any(flags.values())

    assert cli(["ask", "how do I get VPN access?", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["sources"][0]["path"] == "it-security/vpn-guide.md" and result["sources"][0]["archived"] is False
    assert all(s["archived"] for s in result["sources"] if s["path"] == "it-security/vpn-guide-legacy.md")

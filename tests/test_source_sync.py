"""The sync engine (retrieval/sources/sync.py, mirror.py) with the real shared state (bot/state, SQLite)
and the real indexer: a source kept in memory by the test stands in for a connector, and counts what
it is asked, so a test sees when a sync fetched again."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from support.docs import make_pdf

from bot.state import State
from retrieval.config import IndexConfig
from retrieval.embeddings import Embedder
from retrieval.errors import SourceUnreachableError, UnsafePathError
from retrieval.indexer import Indexer
from retrieval.models import IndexStats
from retrieval.search import Searcher
from retrieval.sources.base import Changes, Cursor, KnownDocument, SourceDocument
from retrieval.sources.mirror import remove_document, write_document
from retrieval.sources.spec import SourceSpec
from retrieval.sources.sync import SourceSync

SPEC = SourceSpec(name="wiki", kind="test")


@dataclass
class MemorySource:
    """A source whose documents the test edits; each edit bumps a revision. `changes` answers from the
    cursor (the revision last synced) like an incremental API, or lists everything (`full`)."""

    docs: dict[str, SourceDocument] = field(default_factory=dict)
    changed_at: dict[str, int] = field(default_factory=dict)
    deleted_at: dict[str, int] = field(default_factory=dict)
    revision: int = 0
    full: bool = False
    failure: Exception | None = None
    calls: list[Cursor] = field(default_factory=list)
    fetched: int = 0

    def put(self, doc_id: str, path: str, text: str, **meta: object) -> None:
        self.revision += 1
        self.docs[doc_id] = SourceDocument(doc_id, path, meta.pop("title", doc_id), text.encode(), **meta)  # type: ignore[arg-type]
        self.changed_at[doc_id] = self.revision

    def delete(self, doc_id: str) -> None:
        self.revision += 1
        del self.docs[doc_id]
        self.deleted_at[doc_id] = self.revision

    def changes(self, cursor: Cursor, known: Mapping[str, KnownDocument]) -> Changes:
        self.calls.append(cursor)
        if self.failure is not None:
            raise self.failure
        since = -1 if cursor is None or self.full else int(cursor)
        upserts = [d for i, d in self.docs.items() if self.changed_at[i] > since]
        self.fetched += len(upserts)
        if self.full:
            return Changes(upserts=upserts, cursor=self.revision, listed_all=True, requests=1 + len(upserts))
        gone = [i for i, at in self.deleted_at.items() if at > since]
        return Changes(upserts=upserts, deleted=gone, cursor=self.revision, requests=1 + len(upserts))


@pytest.fixture
def state(tmp_path: Path) -> Iterator[State]:
    state = State(tmp_path / "state.sqlite3")
    yield state
    state.close()


def indexer(tmp_path: Path, embedder: Embedder, name: str = "index") -> Callable[[Path], IndexStats]:
    """The index step as the bot runs it: the mirror indexed as the source's root."""
    docs = tmp_path / "docs"
    docs.mkdir(exist_ok=True)
    config = IndexConfig(index_dir=tmp_path / name)
    return lambda mirror: Indexer(config, embedder, docs_dir=docs).run([mirror], progress=False, add_root=SPEC.name)


def search(tmp_path: Path, embedder: Embedder, query: str, name: str = "index") -> list[str]:
    with Searcher(IndexConfig(index_dir=tmp_path / name), embedder) as searcher:
        return [h.path for h in searcher.search(query, k=3)]


def test_a_sync_mirrors_indexes_and_commits_and_an_unchanged_source_costs_one_call(
    tmp_path: Path, state: State, embedder: Embedder
) -> None:
    source = MemorySource()
    source.put("p1", "eng/vpn.md", "# VPN\n\nConnect with WireGuard to vpn.example.com.\n", url="https://wiki/p1")
    source.put("p2", "hr/leave.md", "# Leave\n\nAnnual leave is 25 days.\n", updated="2026-01-02", tags=("hr",))
    mirror, index = tmp_path / "mirror", indexer(tmp_path, embedder)
    report = SourceSync(SPEC, source, state.sources, mirror).run(index)
    assert (report.added, report.changed, report.deleted, report.documents) == (2, 0, 0, 2)
    assert report.index is not None and report.index.added == 2
    text = (mirror / "eng/vpn.md").read_text()
    assert text.startswith("---\ntitle: p1\nurl: https://wiki/p1\n---\n# VPN")
    assert search(tmp_path, embedder, "WireGuard VPN")[0] == "wiki/eng/vpn.md"
    cursor, known = state.sources.load("wiki")
    assert cursor == 2 and set(known) == {"p1", "p2"}

    again = SourceSync(SPEC, source, state.sources, mirror).run(index)
    assert (again.added, again.changed, again.deleted, again.unchanged, again.restored) == (0, 0, 0, 2, 0)
    assert again.index is not None and again.index.unchanged == 2 and source.fetched == 2


def test_a_replica_with_an_empty_mirror_restores_it_from_the_store_without_fetching(
    tmp_path: Path, state: State, embedder: Embedder
) -> None:
    source = MemorySource()
    source.put("p1", "vpn.md", "# VPN\n\nConnect with WireGuard to vpn.example.com.\n")
    source.put("p2", "report.pdf", "", title="Quarterly report", url="https://drive/r", updated="2026-02-03")
    pdf = make_pdf(tmp_path / "r.pdf", [["The parking garage closes at nine in the evening."]], title="Word - doc1")
    source.docs["p2"] = replace(source.docs["p2"], content=pdf.read_bytes())
    SourceSync(SPEC, source, state.sources, tmp_path / "mirror-a").run(indexer(tmp_path, embedder, "index-a"))

    other = State(tmp_path / "state.sqlite3")  # a second replica: same shared state, a mirror of its own
    try:
        report = SourceSync(SPEC, source, other.sources, tmp_path / "mirror-b").run(
            indexer(tmp_path, embedder, "index-b")
        )
    finally:
        other.close()
    assert report.restored == 2 and report.added == report.deleted == 0 and source.fetched == 2
    for path in ("vpn.md", "report.pdf", ".report.pdf.meta.yml"):
        assert (tmp_path / "mirror-b" / path).read_bytes() == (tmp_path / "mirror-a" / path).read_bytes()
    with Searcher(IndexConfig(index_dir=tmp_path / "index-b"), embedder) as searcher:
        hit = searcher.search("when does the parking garage close", k=1)[0]
    # the PDF is cited with the source's metadata (its sidecar), not the PDF's own "Word - doc1"
    assert (hit.path, hit.title, hit.url, hit.updated) == (
        "wiki/report.pdf",
        "Quarterly report",
        "https://drive/r",
        "2026-02-03",
    )


def test_a_failing_connector_changes_nothing_and_raises(tmp_path: Path, state: State, embedder: Embedder) -> None:
    source = MemorySource()
    source.put("p1", "vpn.md", "# VPN\n\nConnect with WireGuard to vpn.example.com.\n")
    mirror, index = tmp_path / "mirror", indexer(tmp_path, embedder)
    SourceSync(SPEC, source, state.sources, mirror).run(index)
    before = (state.sources.load("wiki"), (mirror / "vpn.md").read_bytes())
    source.delete("p1")
    source.failure = SourceUnreachableError("source 'wiki' (test): vpn.example.com cannot be reached")
    with pytest.raises(SourceUnreachableError, match="^source 'wiki'"):
        SourceSync(SPEC, source, state.sources, mirror).run(index)
    assert (state.sources.load("wiki"), (mirror / "vpn.md").read_bytes()) == before
    assert search(tmp_path, embedder, "WireGuard VPN") == ["wiki/vpn.md"]


def test_listed_all_deletes_the_known_documents_not_listed(tmp_path: Path, state: State, embedder: Embedder) -> None:
    source = MemorySource(full=True)
    source.put("p1", "vpn.md", "# VPN\n\nConnect with WireGuard to vpn.example.com.\n")
    source.put("p2", "leave.md", "# Leave\n\nAnnual leave is 25 days.\n")
    mirror, index = tmp_path / "mirror", indexer(tmp_path, embedder)
    SourceSync(SPEC, source, state.sources, mirror).run(index)
    del source.docs["p2"]  # gone from the listing, no deletion reported
    report = SourceSync(SPEC, source, state.sources, mirror).run(index)
    assert (report.deleted, report.unchanged, report.documents) == (1, 1, 1)
    assert not (mirror / "leave.md").exists() and set(state.sources.load("wiki")[1]) == {"p1"}
    assert report.index is not None and report.index.removals == ["wiki/leave.md"]


def test_a_sync_killed_between_index_and_commit_is_redone_from_the_old_cursor(
    tmp_path: Path, state: State, embedder: Embedder
) -> None:
    source = MemorySource()
    source.put("p1", "vpn.md", "# VPN\n\nConnect with WireGuard to vpn.example.com.\n")
    mirror, index = tmp_path / "mirror", indexer(tmp_path, embedder)
    SourceSync(SPEC, source, state.sources, mirror).run(index)
    source.put("p2", "leave.md", "# Leave\n\nAnnual leave is 25 days.\n")
    source.delete("p1")

    def killed(folder: Path) -> IndexStats:
        index(folder)
        raise KeyboardInterrupt  # the process dies after the index holds the change, before the commit

    with pytest.raises(KeyboardInterrupt):
        SourceSync(SPEC, source, state.sources, mirror).run(killed)
    assert state.sources.load("wiki")[0] == 1  # not committed
    report = SourceSync(SPEC, source, state.sources, mirror).run(index)
    assert source.calls[-1] == 1 and (report.added, report.deleted) == (1, 1)  # redone from the old cursor
    assert state.sources.load("wiki")[0] == 3 and set(state.sources.load("wiki")[1]) == {"p2"}
    assert sorted(p.name for p in mirror.iterdir()) == ["leave.md"]
    assert search(tmp_path, embedder, "annual leave days") == ["wiki/leave.md"]


def test_a_renamed_document_moves_its_file_and_the_indexer_pairs_the_rename(
    tmp_path: Path, state: State, embedder: Embedder
) -> None:
    source = MemorySource()
    source.put("p1", "old/vpn.md", "# VPN\n\nConnect with WireGuard to vpn.example.com.\n", title="VPN")
    mirror, index = tmp_path / "mirror", indexer(tmp_path, embedder)
    SourceSync(SPEC, source, state.sources, mirror).run(index)
    source.put("p1", "new/vpn-guide.md", "# VPN\n\nConnect with WireGuard to vpn.example.com.\n", title="VPN")
    report = SourceSync(SPEC, source, state.sources, mirror).run(index)
    assert (report.added, report.changed, report.deleted) == (0, 1, 0)
    assert not (mirror / "old").exists() and (mirror / "new/vpn-guide.md").is_file()
    assert report.index is not None and report.index.renames == [("wiki/old/vpn.md", "wiki/new/vpn-guide.md")]


def test_unsafe_or_taken_paths_are_skipped_with_a_note(tmp_path: Path, state: State, embedder: Embedder) -> None:
    source = MemorySource()
    source.put("p1", "a.md", "# A\n\nThe first document.\n")
    source.put("p2", "../escape.md", "# B\n\nOut of the mirror.\n")
    source.put("p3", "a.md", "# C\n\nThe same path as the first.\n")
    source.put("p4", "tool.exe", "binary")
    source.put("p5", "caf\udce9.md", "# D\n\nA name that was not UTF-8.\n")
    source.put("p6\udce9", "d.md", "# E\n\nAn id that was not UTF-8.\n")
    report = SourceSync(SPEC, source, state.sources, tmp_path / "mirror").run(indexer(tmp_path, embedder))
    assert report.added == 1 and not (tmp_path / "escape.md").exists()
    assert [n.split(":")[0] for n in report.notes] == ["p2", "p4", "p5", "p6\\udce9", "p3"]
    assert "must be relative" in report.notes[0] and "another document's" in report.notes[-1]


def test_the_mirror_writer_keeps_a_files_own_front_matter_and_refuses_links_out(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    own = b"---\ntitle: Own title\nsuperseded_by: new.md\n---\n# Heading\n\nBody.\n"
    doc = SourceDocument("d", "a/doc.md", "Connector title", own, url="https://git/a/doc.md", updated="2026-03-04")
    write_document(mirror, doc)
    text = (mirror / "a/doc.md").read_text()
    assert text.startswith(
        "---\ntitle: Own title\nurl: https://git/a/doc.md\nupdated: '2026-03-04'\nsuperseded_by: new.md\n---\n"
    )
    evil = "Title\n---\nurl: javascript:alert(1)\n" + "x" * 500
    write_document(mirror, replace(doc, path="b.md", content=b"Body.\n", title=evil))
    write_document(mirror, replace(doc, path="c.md", content=b"Body.\n", updated="last spring"))
    assert "updated" not in (mirror / "c.md").read_text()  # it would fail the document in the loader
    front = (mirror / "b.md").read_text().split("\n---\n")[0].split("\n")[1:]
    # one bounded line a key, no key injected
    assert [line.split(":")[0] for line in front] == ["title", "url", "updated"] and len(front[0]) < 320
    (tmp_path / "outside").mkdir()
    (mirror / "link").symlink_to(tmp_path / "outside")
    with pytest.raises(UnsafePathError, match="link"):
        write_document(mirror, replace(doc, path="link/x.md"))
    assert not list((tmp_path / "outside").iterdir())
    remove_document(mirror, "a/doc.md")
    assert not (mirror / "a").exists() and (mirror / "b.md").is_file()

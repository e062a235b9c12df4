"""Replicas on one Chroma server, each with its own manifest: a run deletes only the unrecorded chunks
of what it walked. Another replica's documents in a root this run did not walk are adopted into its
manifest (a root it knows) or left alone (one it does not), and the next run over that root checks
them against its own folder."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.servers import chroma

from retrieval.config import IndexConfig
from retrieval.indexer import Indexer
from retrieval.search import Searcher
from retrieval.store import open_collection


def _paths(collection: Any) -> dict[str, int]:
    """Document key -> number of chunks in the collection."""
    counts: dict[str, int] = {}
    for _, meta in _rows(collection):
        counts[meta["path"]] = counts.get(meta["path"], 0) + 1
    return counts


def _rows(collection: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    got = collection.get(include=["metadatas"])
    return zip(got["ids"], got["metadatas"], strict=True)


def _listed(indexer: Indexer) -> set[str]:
    return {d.key for root in indexer.listing().roots for d in root.documents}


@pytest.mark.slow  # a `chroma run` server
def test_a_replicas_run_keeps_what_another_indexed_in_roots_it_did_not_walk(
    tmp_path: Path, embedder, write_doc
) -> None:
    docs = tmp_path / "docs"
    write_doc(docs, "hr/vacation.md", "Vacation", {"Allowance": "Employees get 25 vacation days a year."})
    mirrors = {name: tmp_path / f"{name}-handbook" for name in ("a", "b")}  # each replica's own mirror
    for mirror in mirrors.values():
        write_doc(mirror, "intro.md", "Intro", {"Welcome": "Welcome to the engineering handbook."})
        write_doc(mirror, "tools.md", "Tools", {"Editors": "Use whichever editor you like."})

    with chroma(tmp_path) as port:

        def replica(name: str) -> Indexer:
            config = IndexConfig(
                index_dir=tmp_path / name,
                chroma_host="127.0.0.1",
                chroma_port=port,
                collection="docs",
                lexical_refresh_seconds=0,
            )
            return Indexer(config, embedder, docs_dir=docs)

        def sync(indexer: Indexer, name: str) -> Any:  # what the bot runs after a source's sync
            return indexer.run([mirrors[name]], progress=False, add_root="handbook", move_root=True)

        a, b, c = replica("a"), replica("b"), replica("c")
        # C's manifest is made before any handbook chunk exists (a lost one is rebuilt from the chunks,
        # roots included) and C never syncs it: C does not know the root. B does.
        c.run([docs], progress=False)
        sync(a, "a")
        a.run([docs], progress=False)
        sync(b, "b")
        b.run([docs], progress=False)

        write_doc(mirrors["a"], "oncall.md", "On-call", {"Pager": "The zorblax pager rotates weekly."})
        assert sync(a, "a").added == 1
        collection = open_collection(a.config)
        chunks = _paths(collection)["handbook/oncall.md"]

        # B's and C's scheduled re-index of the docs folder walks no handbook: A's new document stays.
        stats = b.run([docs], progress=False)
        assert (stats.removed, stats.unchanged) == (0, 1)
        c.run([docs], progress=False)
        assert _paths(collection)["handbook/oncall.md"] == chunks
        with Searcher(b.config, embedder) as searcher:
            assert searcher.search("zorblax pager", k=1)[0].path == "handbook/oncall.md"
        assert "handbook/oncall.md" in _listed(b)  # adopted: B's manifest knows it now
        assert not any(key.startswith("handbook/") for key in _listed(c))  # C has no such root: left alone

        # B's next sync walks its own mirror, which does not have it (yet): removed, as a document.
        stats = sync(b, "b")
        assert (stats.removals, stats.unchanged) == (["handbook/oncall.md"], 2)
        assert "handbook/oncall.md" not in _paths(collection)

        # Walked roots keep deleting what the manifest does not expect: A's document of the docs folder
        # that B's folder lacks goes at B's next run over it.
        write_doc(docs, "it/vpn.md", "VPN", {"Setup": "The quuxotron VPN profile is in the IT portal."})
        a.run([docs], progress=False)
        (docs / "it/vpn.md").unlink()
        b.run([docs], progress=False)
        assert "it/vpn.md" not in _paths(collection)


def test_orphans_outside_a_run_are_adopted_only_when_whole(tmp_path: Path, embedder, write_doc) -> None:
    """One local index, the states a killed run leaves: a document's chunks written but not recorded
    (whole: adopted by a run that does not walk it) and a document with a chunk missing (not whole:
    left alone until a run over its root indexes it again)."""
    docs, handbook = tmp_path / "docs", tmp_path / "handbook"
    write_doc(docs, "hr/vacation.md", "Vacation", {"Allowance": "Employees get 25 vacation days a year."})
    write_doc(docs, "eng/deploys.md", "Deploys", {"Rollback": "Use shipit rollback to undo a bad deploy."})
    sections = {f"Part {n}": f"Section {n} of the handbook's long chapter on frobnication." * 8 for n in range(3)}
    write_doc(handbook, "long.md", "Long", sections)
    config = IndexConfig(index_dir=tmp_path / "index", chunk_tokens=64, chunk_overlap_tokens=0)
    indexer = Indexer(config, embedder, docs_dir=docs)
    indexer.run([docs], progress=False)
    indexer.run([handbook], progress=False, add_root="handbook")
    collection = open_collection(config)
    long_ids = sorted(cid for cid, meta in _rows(collection) if meta["path"] == "handbook/long.md")
    assert len(long_ids) >= 2

    # eng/deploys.md written but never recorded; one chunk of handbook/long.md gone.
    manifest = json.loads((config.index_dir / "manifest.json").read_text())
    del manifest["files"]["eng/deploys.md"]
    (config.index_dir / "manifest.json").write_text(json.dumps(manifest))
    collection.delete(ids=long_ids[:1])

    stats = indexer.run([docs / "hr"], progress=False)  # walks neither
    assert stats.chunks_embedded == 0
    assert _listed(indexer) == {"hr/vacation.md", "eng/deploys.md"}  # the whole one adopted
    assert sorted(cid for cid, meta in _rows(collection) if meta["path"] == "handbook/long.md") == long_ids[1:]

    stats = indexer.run([handbook], progress=False)  # walks it: indexed again, the lost chunk embedded
    assert (stats.added, stats.chunks_embedded, stats.chunks_reused) == (1, 1, len(long_ids) - 1)
    assert sorted(cid for cid, meta in _rows(collection) if meta["path"] == "handbook/long.md") == long_ids

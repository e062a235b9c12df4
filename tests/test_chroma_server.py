"""Server mode against a real `chroma run` on a free loopback port: index in one place, search from
another (a second replica with its own folder), and searchers pick up changes via the stamp."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.servers import chroma

from retrieval.config import IndexConfig
from retrieval.errors import IndexMissingError
from retrieval.indexer import Indexer
from retrieval.models import SearchFilter
from retrieval.search import Searcher
from retrieval.store import acquire_index_lock

pytestmark = pytest.mark.slow  # a `chroma run` server


@pytest.fixture
def chroma_server(tmp_path: Path) -> Iterator[int]:
    with chroma(tmp_path) as port:
        yield port


def test_index_and_search_through_a_chroma_server(tmp_path: Path, chroma_server: int, embedder, write_doc) -> None:
    def config(folder: str) -> IndexConfig:
        return IndexConfig(
            index_dir=tmp_path / folder,
            chroma_host="127.0.0.1",
            chroma_port=chroma_server,
            collection="docs",
            lexical_refresh_seconds=0,
        )

    indexer_cfg, replica_cfg = config("indexer"), config("replica")
    with pytest.raises(IndexMissingError, match="qwenbot index"):
        Searcher(replica_cfg, embedder)

    docs = tmp_path / "docs"
    write_doc(docs, "hr/vacation.md", "Vacation", {"Allowance": "Employees get 25 vacation days a year."}, tags=("hr",))
    write_doc(docs, "eng/deploys.md", "Deploys", {"Rollback": "Use shipit rollback to undo a bad deploy."})
    stats = Indexer(indexer_cfg, embedder).run([docs], progress=False)
    assert stats.added == 2 and stats.chunks_total == 2

    # A replica with an empty folder of its own builds BM25 from the collection. With a server there is
    # no local lock: any number of processes search while one indexes.
    assert acquire_index_lock(replica_cfg).path is None
    with Searcher(replica_cfg, embedder) as replica:
        assert replica.search("shipit rollback", k=1)[0].path == "eng/deploys.md"
        assert replica.stats().documents == 2

        write_doc(docs, "it/vpn.md", "VPN", {"Setup": "The quuxotron VPN profile is in the IT portal."}, tags=("it",))
        (docs / "eng/deploys.md").unlink()
        stats = Indexer(indexer_cfg, embedder).run([docs], progress=False)
        assert (stats.added, stats.removed, stats.unchanged) == (1, 1, 1)

        # The replica notices the new stamp, rebuilds BM25 from the collection and finds the new doc.
        hits = replica.search("quuxotron", k=3)
        assert hits[0].path == "it/vpn.md" and hits[0].lexical_score
        assert "eng/deploys.md" not in {h.path for h in replica.search("shipit rollback", k=5)}
        assert replica.stats().documents == 2
        scoped = replica.search("vacation", k=5, filter=SearchFilter(tags=("hr",)))
        assert {h.path for h in scoped} == {"hr/vacation.md"}

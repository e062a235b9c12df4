"""Running a wiki connector (Confluence, Notion) sync after sync in tests: `Remembered` keeps what the
sync remembers between two `changes()` calls the way the engine does (doc id -> path, version, hash),
without a mirror or a store; `Indexed` runs the real engine and indexer, and searches the result."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from bot.state import State
from retrieval.config import IndexConfig
from retrieval.embeddings import Embedder
from retrieval.indexer import Indexer
from retrieval.models import Hit, IndexStats
from retrieval.search import Searcher
from retrieval.sources.base import Changes, Connector, Cursor, KnownDocument, SourceDocument
from retrieval.sources.spec import SourceSpec
from retrieval.sources.sync import SourceSync, SyncReport


@dataclass
class Remembered:
    connector: Connector
    cursor: Cursor = None
    known: dict[str, KnownDocument] = field(default_factory=dict)
    docs: dict[str, SourceDocument] = field(default_factory=dict)  # the latest version of each

    def sync(self) -> Changes:
        changes = self.connector.changes(self.cursor, dict(self.known))
        listed = {d.doc_id for d in changes.upserts} | set(changes.unchanged)
        gone = set(changes.deleted) | ({i for i in self.known if i not in listed} if changes.listed_all else set())
        for doc_id in gone:
            self.known.pop(doc_id, None)
            self.docs.pop(doc_id, None)
        for doc in changes.upserts:
            self.known[doc.doc_id] = KnownDocument(doc.path, doc.version, hashlib.sha256(doc.content).hexdigest())
            self.docs[doc.doc_id] = doc
        self.cursor = changes.cursor
        return changes

    def by_title(self, title: str) -> SourceDocument:
        return next(d for d in self.docs.values() if d.title == title)


@dataclass
class Indexed:
    """A source synced by the real engine (SourceSync, the SQLite shared state, the real Indexer) into an
    index of its own, and searched the way the bot searches."""

    spec: SourceSpec
    connector: Connector
    folder: Path
    embedder: Embedder

    def sync(self) -> SyncReport:
        docs = self.folder / "docs"
        docs.mkdir(parents=True, exist_ok=True)
        config = IndexConfig(index_dir=self.folder / "index")

        def index(mirror: Path) -> IndexStats:
            return Indexer(config, self.embedder, docs_dir=docs).run([mirror], progress=False, add_root=self.spec.name)

        state = State(self.folder / "state.sqlite3")
        try:
            return SourceSync(self.spec, self.connector, state.sources, self.folder / "mirror").run(index)
        finally:
            state.close()

    def search(self, query: str, k: int = 3) -> list[Hit]:
        with Searcher(IndexConfig(index_dir=self.folder / "index"), self.embedder) as searcher:
            return searcher.search(query, k=k)

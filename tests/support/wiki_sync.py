"""What the sync remembers between two `changes()` calls, kept the way the engine keeps it (doc id ->
path, version, hash), so connector tests can run several syncs in a row without the mirror or a store."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from retrieval.sources.base import Changes, Connector, Cursor, KnownDocument, SourceDocument


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

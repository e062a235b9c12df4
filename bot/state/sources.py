"""The sources' shared state: what a sync needs to continue, and how each source's syncs went.

`state.sources` (`Sources`) is the `SyncStore` of retrieval/sources/sync.py, so any replica may run a
source's next sync without fetching again what another replica fetched:

- `load(source)`: the cursor of the last committed sync (None before any) and the documents known, by
  doc id (mirror path, the source's version marker, the hash of the mirrored bytes);
- `files(source, doc_ids)`: the mirrored bytes of those documents (to restore a replica's mirror);
- `commit(source, cursor, upserts, deleted)`: one transaction, after the index holds the sync's changes.

And the per-source status that `qwenbot sources` and `/qwenbot status` show:

- `record_success(source, next_due)` / `record_failure(source, error, next_due)` after each attempt
  (a failure's message is kept as one bounded line: pass the SourceError's text, never a secret);
  `record_failure` returns the consecutive failures, for the caller's backoff;
- `status(source)` / `all_status()`: `SourceStatus` records (last attempt, last success, last error,
  consecutive failures, next due, document count); a source never attempted reads as all empty;
- `forget(source)`: drops a source's documents and status (a source removed from the sources file).

Times are Unix seconds (time.time()). The SQL is the same on SQLite and PostgreSQL (migration 5).
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from bot.state.db import Database
from retrieval.sources.base import Cursor, KnownDocument
from retrieval.sources.mirror import MirroredFile
from retrieval.sources.sync import StoredDocument

_ERROR_LIMIT = 300  # characters of a stored error line
_IN_BATCH = 500  # ids per `IN (...)`: well under SQLite's bound on parameters


@dataclass(frozen=True)
class SourceStatus:
    source: str
    documents: int = 0  # documents the last committed sync left mirrored
    last_attempt: float | None = None
    last_success: float | None = None
    last_error: str | None = None  # the last attempt's error, one line (None once a sync succeeds)
    failures: int = 0  # consecutive failed attempts
    next_due: float | None = None


class Sources:
    def __init__(self, db: Database) -> None:
        self._db = db

    # --- SyncStore (retrieval/sources/sync.py) ---

    def load(self, source: str) -> tuple[Cursor, dict[str, KnownDocument]]:
        with self._db.transaction() as tx:
            rows = tx.fetch("SELECT sync_cursor FROM source_sync WHERE source = ?", (source,))
            docs = tx.fetch("SELECT doc_id, path, version, hash FROM source_documents WHERE source = ?", (source,))
        cursor = json.loads(rows[0][0]) if rows and rows[0][0] is not None else None
        return cursor, {d: KnownDocument(path, version, digest) for d, path, version, digest in docs}

    def files(self, source: str, doc_ids: Collection[str]) -> dict[str, MirroredFile]:
        ids = list(doc_ids)
        found: dict[str, MirroredFile] = {}
        for start in range(0, len(ids), _IN_BATCH):
            batch = ids[start : start + _IN_BATCH]
            rows = self._db.fetch(
                "SELECT doc_id, path, data, sidecar FROM source_documents "
                f"WHERE source = ? AND doc_id IN ({', '.join('?' * len(batch))})",
                (source, *batch),
            )
            for doc_id, path, data, sidecar in rows:
                found[doc_id] = MirroredFile(path, bytes(data), None if sidecar is None else bytes(sidecar))
        return found

    def commit(
        self, source: str, cursor: Cursor, upserts: Mapping[str, StoredDocument], deleted: Collection[str]
    ) -> None:
        rows = [
            (source, doc_id, s.file.path, s.version, s.file.hash, s.file.data, s.file.sidecar)
            for doc_id, s in upserts.items()
        ]
        with self._db.transaction() as tx:
            tx.execute(
                "INSERT INTO source_sync (source, sync_cursor) VALUES (?, ?) "
                "ON CONFLICT (source) DO UPDATE SET sync_cursor = excluded.sync_cursor",
                (source, None if cursor is None else json.dumps(cursor)),
            )
            if deleted:
                tx.executemany(
                    "DELETE FROM source_documents WHERE source = ? AND doc_id = ?", [(source, d) for d in deleted]
                )
            if rows:
                tx.executemany(
                    "INSERT INTO source_documents (source, doc_id, path, version, hash, data, sidecar) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (source, doc_id) DO UPDATE SET "
                    "path = excluded.path, version = excluded.version, hash = excluded.hash, "
                    "data = excluded.data, sidecar = excluded.sidecar",
                    rows,
                )

    # --- status ---

    def record_success(self, source: str, next_due: float | None, now: float | None = None) -> None:
        at = time.time() if now is None else now
        self._db.execute(
            "INSERT INTO source_sync (source, last_attempt, last_success, failures, next_due) VALUES (?, ?, ?, 0, ?) "
            "ON CONFLICT (source) DO UPDATE SET last_attempt = excluded.last_attempt, "
            "last_success = excluded.last_success, last_error = NULL, failures = 0, next_due = excluded.next_due",
            (source, at, at, next_due),
        )

    def record_failure(self, source: str, error: str, next_due: float | None, now: float | None = None) -> int:
        """Returns the consecutive failures, this one included."""
        at = time.time() if now is None else now
        line = " ".join(error.split())
        line = line if len(line) <= _ERROR_LIMIT else line[: _ERROR_LIMIT - 1] + "…"
        rows = self._db.fetch(
            "INSERT INTO source_sync (source, last_attempt, last_error, failures, next_due) VALUES (?, ?, ?, 1, ?) "
            "ON CONFLICT (source) DO UPDATE SET last_attempt = excluded.last_attempt, "
            "last_error = excluded.last_error, failures = source_sync.failures + 1, next_due = excluded.next_due "
            "RETURNING failures",
            (source, at, line, next_due),
        )
        return int(rows[0][0])

    def status(self, source: str) -> SourceStatus:
        return next(iter(self._statuses(source)), SourceStatus(source))

    def all_status(self) -> list[SourceStatus]:
        """Every source with a sync state or documents, by name."""
        return self._statuses(None)

    def _statuses(self, source: str | None) -> list[SourceStatus]:
        where, params = ("WHERE s.source = ?", (source,)) if source is not None else ("", ())
        rows = self._db.fetch(
            "SELECT s.source, (SELECT COUNT(*) FROM source_documents d WHERE d.source = s.source), "
            "s.last_attempt, s.last_success, s.last_error, s.failures, s.next_due "
            f"FROM source_sync s {where} ORDER BY s.source",
            params,
        )
        return [SourceStatus(r[0], int(r[1]), r[2], r[3], r[4], int(r[5]), r[6]) for r in rows]

    def forget(self, source: str) -> None:
        with self._db.transaction() as tx:
            tx.execute("DELETE FROM source_documents WHERE source = ?", (source,))
            tx.execute("DELETE FROM source_sync WHERE source = ?", (source,))

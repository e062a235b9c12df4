"""One sync of one source: its connector's changes written into its mirror folder, the mirror indexed,
and then the shared state updated.

The steps, and why in this order (docs/indexing.md, "Sources: a sync's crash safety"):
1. restore the mirror from the store: a known document missing or different on disk is rewritten from
   the stored bytes, a file the store does not know is removed. A replica that never synced gets the
   whole mirror without fetching, and a sync killed before its commit is undone on disk;
2. ask the connector what changed since the stored cursor. An error here is raised as it is, with the
   index and the stored documents untouched: the source's documents keep answering;
3. write the upserts, remove the deleted (with `listed_all`, also the known ids not listed), move a
   renamed document's file (same doc_id, new path: the indexer pairs the two as a rename);
4. index the mirror (the caller's callback: the bot runs it under its index job lock);
5. commit the cursor and the documents to the store, only once the index holds them. A sync killed
   before this is redone from the old cursor, which is harmless: writes are idempotent, the indexer
   skips unchanged files.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from retrieval.errors import UnsafePathError
from retrieval.loaders import sidecar_path
from retrieval.models import IndexStats
from retrieval.sources.base import Changes, Connector, Cursor, KnownDocument, SourceDocument
from retrieval.sources.mirror import MirroredFile, remove_document, render, shown, write_file
from retrieval.sources.spec import SourceSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredDocument:
    """A document as the store keeps it: the source's version marker and the mirrored bytes."""

    version: str
    file: MirroredFile

    def known(self) -> KnownDocument:
        return KnownDocument(self.file.path, self.version, self.file.hash)


class SyncStore(Protocol):
    """Where a sync keeps what it needs to continue, shared by every replica (bot/state/sources.py)."""

    def load(self, source: str) -> tuple[Cursor, dict[str, KnownDocument]]:
        """The cursor the last committed sync returned (None before any) and the documents, by doc id."""
        ...

    def files(self, source: str, doc_ids: Collection[str]) -> dict[str, MirroredFile]:
        """The stored bytes of these documents, by doc id."""
        ...

    def commit(
        self, source: str, cursor: Cursor, upserts: Mapping[str, StoredDocument], deleted: Collection[str]
    ) -> None:
        """Stores the new cursor, the written documents and forgets the deleted ones, all at once."""
        ...


@dataclass
class SyncReport:
    """What one sync did."""

    added: int = 0
    changed: int = 0  # renamed documents included
    deleted: int = 0
    unchanged: int = 0
    requests: int = 0  # the connector's requests (HTTP calls, git commands)
    seconds: float = 0.0
    restored: int = 0  # mirror files rewritten or removed from the store before syncing
    documents: int = 0  # the source's documents after the sync
    notes: list[str] = field(default_factory=list)  # one line each: documents skipped and why
    index: IndexStats | None = None  # what the index step did


@dataclass
class _Plan:
    """Step 3's outcome, committed in step 5."""

    upserts: dict[str, StoredDocument] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)


class SourceSync:
    """Syncs `spec`'s source through `connector` into `mirror_dir`, remembering it in `store`."""

    def __init__(self, spec: SourceSpec, connector: Connector, store: SyncStore, mirror_dir: Path) -> None:
        self.spec = spec
        self.connector = connector
        self.store = store
        self.mirror = mirror_dir

    def run(self, index: Callable[[Path], IndexStats]) -> SyncReport:
        """Raises the connector's SourceError unchanged (nothing indexed, nothing stored)."""
        started = time.perf_counter()
        report = SyncReport()
        self.mirror.mkdir(parents=True, exist_ok=True)
        cursor, known = self.store.load(self.spec.name)
        report.restored = restore(self.mirror, known, lambda ids: self.store.files(self.spec.name, ids))
        changes = self.connector.changes(cursor, known)  # (2): raises before anything changes
        report.requests = changes.requests
        report.notes.extend(changes.notes)
        plan = self._apply(changes, known, report)
        report.index = index(self.mirror)
        self.store.commit(self.spec.name, changes.cursor, plan.upserts, plan.deleted)
        report.documents = len(known) + report.added - report.deleted
        report.seconds = time.perf_counter() - started
        return report

    def _apply(self, changes: Changes, known: Mapping[str, KnownDocument], report: SyncReport) -> _Plan:
        """Step 3: the mirror brought to the source's state; what to commit."""
        plan = _Plan()
        deleted = set(changes.deleted)
        if changes.listed_all:
            listed = {d.doc_id for d in changes.upserts} | set(changes.unchanged)
            deleted |= set(known) - listed
        plan.deleted = {d for d in deleted if d in known}
        rendered = self._render(changes.upserts, known, plan.deleted, report)
        # Old files first (deleted, or moved by a rename), so a path freed and taken in one sync works.
        new_paths = {s.file.path for s in rendered.values()}
        for doc_id in plan.deleted | set(rendered):
            if doc_id in known and known[doc_id].path not in new_paths:
                remove_document(self.mirror, known[doc_id].path)
        for doc_id, stored in rendered.items():
            before = known.get(doc_id)
            if before is not None and (before.hash, before.path, before.version) == (
                stored.file.hash,
                stored.file.path,
                stored.version,
            ):
                continue  # sent again, unchanged: nothing to write or commit
            write_file(self.mirror, stored.file)
            plan.upserts[doc_id] = stored
            if before is None:
                report.added += 1
            elif (before.hash, before.path) != (stored.file.hash, stored.file.path):
                report.changed += 1
        report.deleted = len(plan.deleted)
        report.unchanged = len(known) - report.changed - report.deleted
        return plan

    def _render(
        self, upserts: list[SourceDocument], known: Mapping[str, KnownDocument], deleted: set[str], report: SyncReport
    ) -> dict[str, StoredDocument]:
        """The upserts as mirror files. One whose path is unsafe, or another document's, is skipped
        with a note (a known one keeps its last good file)."""
        rendered: dict[str, StoredDocument] = {}
        for doc in upserts:
            try:
                if shown(doc.doc_id) != doc.doc_id:
                    raise UnsafePathError("its id is not text (bytes that are not UTF-8)")
                rendered[doc.doc_id] = StoredDocument(doc.version, render(doc))
            except UnsafePathError as exc:
                report.notes.append(f"{shown(doc.doc_id)}: skipped: {exc}")
        # the paths that stay taken: documents neither deleted nor written now
        owners = {k.path: i for i, k in known.items() if i not in deleted and i not in rendered}
        kept: dict[str, StoredDocument] = {}
        for doc_id, stored in rendered.items():
            owner = owners.setdefault(stored.file.path, doc_id)
            if owner == doc_id:
                kept[doc_id] = stored
            else:
                report.notes.append(f"{doc_id}: skipped: its path {stored.file.path!r} is another document's")
        return kept


def restore(
    mirror: Path, known: Mapping[str, KnownDocument], fetch: Callable[[list[str]], dict[str, MirroredFile]]
) -> int:
    """Step 1: makes `mirror` hold exactly the known documents (removing the files it does not know,
    rewriting from the store those missing or different); returns how many files it removed or rewrote."""
    expected = {k.path for k in known.values()}
    expected |= {_sidecar(p) for p in expected}
    found, removed = _keep_only(mirror, expected)
    stale = [doc_id for doc_id, k in known.items() if _hash_on_disk(mirror, k.path, found) != k.hash]
    for file in fetch(stale).values() if stale else ():
        write_file(mirror, file)
    if stale or removed:
        log.info(
            "mirror %s: %d documents restored from the shared state, %d stray files removed",
            mirror,
            len(stale),
            removed,
        )
    return len(stale) + removed


def _keep_only(mirror: Path, expected: set[str]) -> tuple[set[str], int]:
    """Removes from `mirror` every file not in `expected`, every link and every empty folder; returns
    the expected files there (plain files under plain folders: os.walk does not enter linked ones)."""
    found: set[str] = set()
    removed = 0
    for folder, dirs, names in os.walk(mirror, topdown=False):
        base = Path(folder)
        prefix = "" if base == mirror else base.relative_to(mirror).as_posix() + "/"
        for name in names:
            if prefix + name in expected and not (base / name).is_symlink():
                found.add(prefix + name)
            else:
                (base / name).unlink()
                removed += 1
        for name in dirs:
            child = base / name
            if child.is_symlink():
                child.unlink()  # a mirror holds no links: one here was not made by a sync
                removed += 1
            elif not any(child.iterdir()):
                child.rmdir()
    return found, removed


def _hash_on_disk(mirror: Path, path: str, found: set[str]) -> str | None:
    if path not in found:
        return None
    sidecar = _sidecar(path)
    meta = (mirror / sidecar).read_bytes() if sidecar in found else None
    return MirroredFile(path, (mirror / path).read_bytes(), meta).hash


def _sidecar(path: str) -> str:
    return sidecar_path(Path(path)).as_posix()

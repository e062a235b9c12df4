"""The state of one indexer run, and what every kind of run (index, remove, prune) shares.

A run opens the collection and the manifest and checks them against each other (a lost manifest is
rebuilt from the chunks' metadata), knows the roots, records failures and skips, and ends by
reconciling: whatever the collection holds that the manifest does not expect is deleted when it lies
in what the run walked (chunks elsewhere may be another replica's work, docs/indexing.md), and the
BM25 index and the collection stamp are brought up to date. The steps themselves live beside it:
index_plan.py (what to read), index_write.py (embedding and writing), index_remove.py (taking out).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retrieval.errors import ModelMismatchError
from retrieval.exclude import Exclusions
from retrieval.lexical import build_lexical, saved_stamp
from retrieval.manifest import (
    DEFAULT_ROOT,
    Failure,
    FileEntry,
    Manifest,
    RootEntry,
    adopt_legacy,
    is_under,
    load_manifest,
    save_manifest,
)
from retrieval.models import FileProblem, IndexStats
from retrieval.store import (
    PAGE,
    check_model,
    iter_collection,
    model_mismatch_message,
    new_stamp,
    open_collection,
    read_stamp,
    record_model,
    write_stamp,
)

if TYPE_CHECKING:
    from retrieval.config import IndexConfig
    from retrieval.embeddings import Embedder


@dataclass
class SourceFile:
    root: str  # the root's name
    key: str  # document key: the path inside the root, prefixed with a named root's name
    path: Path  # where to read it
    shown: str  # how to name it in messages (as the user wrote the PATH)


def default_root(docs_dir: Path | None, paths: list[Path], manifest: Manifest) -> Path | None:
    """The default root's folder, resolved: the configured docs folder, else the first PATH's, else
    the one last indexed; None when there is none of these."""
    if docs_dir is not None:
        return docs_dir.resolve()
    if paths:
        first = paths[0].resolve()
        return first if not first.is_file() else first.parent
    recorded = manifest.roots.get(DEFAULT_ROOT)
    return Path(recorded.path) if recorded is not None else None


class IndexRun:
    """The state of one indexer run. `embedder` is called when a step first needs the model: a run
    where nothing changed never loads it."""

    def __init__(
        self,
        config: IndexConfig,
        manifest_path: Path,
        docs_dir: Path | None,
        embedder: Callable[[], Embedder],
        progress: bool,
    ) -> None:
        self.config = config
        self.docs_dir = docs_dir  # the configured docs folder (QWENBOT_DOCS_DIR), as given
        self.embedder = embedder
        self.progress = progress
        self.stats = IndexStats()
        self.collection: Any = None
        self.manifest = Manifest()
        self.manifest_path = manifest_path
        self.default: Path | None = None  # the default root's folder, resolved
        self.known_hashes: set[str] = set()  # of the texts whose vectors the collection holds
        self.present_ids: set[str] = set()  # chunk ids in the collection when the run started
        self.orphans: dict[str, dict[str, Any]] = {}  # id -> metadata of chunks the manifest did not expect
        # Set before a run's first write and cleared once BM25 and the stamp are up to date: still
        # there at the start of a run means the last one was killed after writing.
        self.dirty_marker = config.index_dir / ".dirty"
        self.touched = self.dirty_marker.exists()  # whether the collection changed since the last stamp
        self.manifest_dirty = False
        self.added: list[tuple[str, str]] = []  # (key, hash) of files new to the index this run
        self.gone: list[tuple[str, str]] = []  # (key, hash) of documents removed this run
        self.failed_keys: set[str] = set()
        self.excluded: set[str] = set()  # keys of files named in a PATH that an exclusion keeps out
        self._exclusions: dict[str, Exclusions] = {}

    def open(self, paths: list[Path]) -> None:
        self.config.index_dir.mkdir(parents=True, exist_ok=True)
        self.collection = open_collection(self.config, create=True)
        check_model(self.config, self.collection.metadata or {})
        self.manifest = self._load_manifest()
        self.default = default_root(self.docs_dir, paths, self.manifest)
        notes = adopt_legacy(self.manifest, self.default)
        if notes:
            self.stats.notes.extend(notes)
            self.save_manifest()
        record_model(self.collection, self.config)

    def roots(self) -> dict[str, Path]:
        """Root name -> folder, the default root being the configured docs folder."""
        roots = {name: Path(entry.path) for name, entry in self.manifest.roots.items()}
        if self.default is not None:
            roots[DEFAULT_ROOT] = self.default
        return roots

    def exclusions(self, root: str) -> Exclusions:
        """The root's exclusions, read once per run."""
        if root not in self._exclusions:
            self._exclusions[root] = Exclusions.for_root(self.roots()[root], self.config.exclude)
        return self._exclusions[root]

    # --- the end of every run --------------------------------------------------------------------

    def reconcile(self, walked: Collection[tuple[str, str]] = ()) -> None:
        """Deletes what the manifest does not expect in what the run walked (`walked`: root name and
        document or folder key, as index_plan.Scope has them); refreshes BM25 if needed."""
        present = self._all_ids() if self.touched else self.present_ids
        orphans = present - self.manifest.expected_ids()
        orphans -= self._spare(orphans, walked)
        if self.manifest_dirty:
            self.save_manifest()  # before any deletion: adopted entries name chunks that are there
        expected = self.manifest.expected_ids()
        if orphans:
            self.touch()
            doomed = sorted(orphans)
            for start in range(0, len(doomed), PAGE):
                self.collection.delete(ids=doomed[start : start + PAGE])
        self.stats.chunks_total = len(present & expected)
        self.stats.documents = len(self.manifest.files)
        lexical_dir = self.config.index_dir / "bm25"
        current = read_stamp(self.collection.metadata or {}).value
        if self.touched or current is None or saved_stamp(lexical_dir) != current:
            # BM25 first, stamp second: a searcher that sees the new stamp finds its BM25 index ready.
            stamp = new_stamp(self.config.embedding_model)
            build_lexical(self.collection, stamp.value).save(lexical_dir)
            write_stamp(self.collection, stamp)
            self.dirty_marker.unlink(missing_ok=True)

    def _spare(self, orphans: set[str], walked: Collection[tuple[str, str]]) -> set[str]:
        """The orphans of documents outside what this run walked: with a Chroma server another replica
        (whose manifest is its own) may have written them. A document whose chunks are whole, in a root
        this run knows, is adopted into the manifest (the next run over that root checks it against its
        folder); the rest are left to a run that walks them. Chunks from before roots are not spared."""
        metas = {cid: self.orphans[cid] for cid in orphans if cid in self.orphans}
        metas.update(_rows(self.collection, sorted(orphans - metas.keys())))  # written during this run
        spared = {
            cid
            for cid, meta in metas.items()
            if isinstance(meta.get("root_path"), str)
            and not any(meta.get("root") == root and is_under(meta.get("path", ""), key) for root, key in walked)
        }
        roots = self.roots()
        found = _manifest_from_chunks(((cid, metas[cid]) for cid in spared), self.config.embedding_model)
        for key, entry in found.files.items():
            if entry.root in roots and key not in self.manifest.files:
                self.manifest.files[key] = entry
                self.manifest_dirty = True
        return spared

    # --- the manifest and the collection -------------------------------------------------------

    def _load_manifest(self) -> Manifest:
        """The manifest, checked against the collection: entries whose chunks are gone are dropped
        (they get indexed again), and a missing manifest is rebuilt from the chunks' metadata."""
        manifest = load_manifest(self.manifest_path)
        if manifest is not None and manifest.embedding_model not in (None, self.config.embedding_model):
            raise ModelMismatchError(model_mismatch_message(self.config, manifest.embedding_model))
        self.present_ids = self._all_ids()
        if manifest is None:
            manifest = _manifest_from_chunks(_rows(self.collection), self.config.embedding_model)
        for path, entry in list(manifest.files.items()):
            if not self.present_ids.issuperset(entry.chunk_ids):
                del manifest.files[path]
        manifest.embedding_model = self.config.embedding_model
        # What can be reused: the manifest's texts, and those of chunks a killed run left unrecorded.
        self.known_hashes = manifest.text_hashes()
        # Their metadata is kept: the reconcile that ends the run tells from it whose they may be.
        self.orphans = dict(_rows(self.collection, sorted(self.present_ids - manifest.expected_ids())))
        self.known_hashes.update(m.get("text_hash", "") for m in self.orphans.values())
        return manifest

    def save_manifest(self) -> None:
        save_manifest(self.manifest, self.manifest_path)
        self.manifest_dirty = False

    def _all_ids(self) -> set[str]:
        return set(self.collection.get(include=[])["ids"])  # ids alone are small: one call, no paging

    def touch(self) -> None:
        """Before the first write of a run: leave the marker that makes the next run rebuild BM25 and
        move the stamp should this one be killed before it does so itself."""
        if not self.touched:
            self.touched = True
            self.dirty_marker.touch()

    # --- what a run could not do ---------------------------------------------------------------

    def problem(self, shown: str, reason: str) -> None:
        """A PATH that could not be indexed at all: always a new failure."""
        self.stats.failed += 1
        self.stats.failed_new += 1
        self.stats.problems.append(FileProblem(shown, reason))

    def fail(self, source: SourceFile, reason: str, digest: str | None) -> None:
        """A file that could not be indexed. New unless the last run recorded the same failure for the
        file as it is now: an old broken file nobody touched must not fail every later run."""
        before = self.manifest.failures.get(source.key)
        new = before is None or before.hash != digest or (digest is None and before.reason != reason)
        since = now() if new or before is None else before.since
        self.manifest.failures[source.key] = Failure(source.root, str(source.path), reason, digest, since)
        self.manifest_dirty = True
        self.failed_keys.add(source.key)
        self.stats.failed += 1
        self.stats.failed_new += new
        self.stats.problems.append(FileProblem(source.shown, reason, new=new))

    def skip(self, source: SourceFile, reason: str) -> None:
        """Not read on purpose: counted as skipped (not a failure), and named in the summary."""
        self.stats.skipped += 1
        self.stats.problems.append(FileProblem(source.shown, reason, skipped=True))


def _rows(collection: Any, ids: list[str] | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
    """(id, metadata) of the collection's chunks, or of those of `ids` still there."""
    for page in iter_collection(collection, ["metadatas"], ids):
        yield from zip(page["ids"], [meta or {} for meta in page["metadatas"]], strict=True)


def _manifest_from_chunks(chunks: Iterable[tuple[str, dict[str, Any]]], model: str) -> Manifest:
    """Manifest entries rebuilt from the metadata every chunk carries (index_write.chunk_metadata): a
    lost manifest's, or another replica's documents. A document is taken only when its chunks are
    whole (one content hash, ordinals 0 to n-1): a killed run's part of one is not, and is indexed again."""
    manifest = Manifest(model)
    files: dict[str, list[tuple[int, str, dict[str, Any]]]] = {}
    for cid, meta in chunks:
        files.setdefault(meta.get("path", ""), []).append((int(meta.get("ordinal", 0)), cid, meta))
    for path, rows in files.items():
        rows.sort(key=lambda r: r[0])
        meta = rows[0][2]
        whole = [r[0] for r in rows] == list(range(len(rows))) and len({r[2].get("doc_hash") for r in rows}) == 1
        if whole and "doc_hash" in meta and "root" in meta:
            ids = [cid for _, cid, _ in rows]
            text_hashes = [m.get("text_hash", "") for _, _, m in rows]
            manifest.files[path] = FileEntry(
                meta["root"], meta["doc_hash"], ids, model, text_hashes, meta.get("title"), meta.get("updated")
            )
            if "root_path" in meta:  # absent from chunks written before roots: `root` is a path there
                manifest.roots.setdefault(meta["root"], RootEntry(meta["root_path"]))
    return manifest


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")

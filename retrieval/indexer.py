"""Incremental indexing: files -> Documents -> Chunks -> vectors -> Chroma, then the BM25 index.

`Indexer` is the entry point (index, remove, prune, list). A run takes the index lock and goes through
its steps, each in its own module: index_run.py (the run's state, the manifest checked against the
collection, the reconcile that ends every run), index_plan.py (what to read), index_write.py
(embedding and writing), index_remove.py (taking documents out).

Crash safety rests on three rules (docs/indexing.md has the reasoning):
1. chunk ids are stable (sha1(path) + ordinal) and written with upsert, so redoing work is harmless;
2. the manifest is replaced atomically and only after a file's chunks are in Chroma;
3. every run ends by deleting whatever the collection holds that the manifest does not expect in what
   it walked (elsewhere, with a Chroma server, it may be another replica's: whole documents are adopted).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from retrieval.config import IndexConfig
from retrieval.embeddings import Embedder, embedder_for
from retrieval.exclude import Exclusions
from retrieval.index_plan import Scope, discover, plan
from retrieval.index_remove import prune_vanished, remove_missing, remove_targets
from retrieval.index_run import IndexRun, default_root, now
from retrieval.index_write import write_files
from retrieval.manifest import DEFAULT_ROOT, Failure, Manifest, RootEntry, adopt_legacy, is_under, load_manifest
from retrieval.models import IndexStats
from retrieval.store import acquire_index_lock


@dataclass
class DocumentListing:
    """One document as `qwenbot index --list` shows it."""

    key: str
    title: str | None  # None: indexed before titles were recorded
    chunks: int
    updated: str | None
    indexed_at: str | None


@dataclass
class RootListing:
    """One root as `qwenbot index --list` shows it."""

    name: str  # DEFAULT_ROOT for the configured docs folder
    path: str  # the folder it is indexed from now
    documents: list[DocumentListing]
    indexed_at: str | None
    exists: bool  # whether the folder is there
    indexed_path: str | None = None  # default root only: the folder last indexed, when it is not `path`
    excluded: list[str] = field(default_factory=list)  # its exclusion patterns, by where they are written

    @property
    def chunks(self) -> int:
        return sum(d.chunks for d in self.documents)


@dataclass
class IndexListing:
    roots: list[RootListing]
    failures: dict[str, Failure]  # document key -> why it is not indexed


def format_summary(stats: IndexStats) -> str:
    """One line: what this run did to which files, then what the index holds now."""
    files = stats.added + stats.updated + stats.renamed + stats.unchanged + stats.skipped + stats.failed
    known = stats.failed - stats.failed_new
    failed = f"{stats.failed} failed" + (f" ({known} already failing, unchanged)" if known else "")
    return (
        f"this run: {files} file{'' if files == 1 else 's'}: {stats.added} added, {stats.updated} updated, "
        f"{stats.renamed} renamed, "
        f"{stats.unchanged} unchanged, {stats.skipped} skipped, {failed}; {stats.removed} removed | "
        f"{stats.chunks_embedded} chunks embedded, {stats.chunks_reused} reused, {stats.seconds:.1f} s | "
        f"index: {stats.documents} documents, {stats.chunks_total} chunks"
    )


class Indexer:
    """Indexes folders and files into the configured store. One run at a time per index.

    `docs_dir` is the default root (QWENBOT_DOCS_DIR). Without one, the first PATH given to `run` is
    it (its folder, for a file): eval and tests index one folder into an index of their own."""

    def __init__(self, config: IndexConfig, embedder: Embedder | None = None, docs_dir: Path | None = None) -> None:
        self.config = config
        self._embedder = embedder
        self.docs_dir = docs_dir
        self.manifest_path = config.index_dir / "manifest.json"

    @property
    def embedder(self) -> Embedder:
        # Loaded on first need: a run where nothing changed never pays for the model.
        if self._embedder is None:
            self._embedder = embedder_for(self.config)
        return self._embedder

    def run(
        self,
        paths: list[Path] | None = None,
        progress: bool = True,
        *,
        add_root: str | None = None,
        move_root: bool = False,
    ) -> IndexStats:
        """Indexes `paths` (files and folders inside the roots; none: every root). With `add_root`, the
        one folder in `paths` becomes a root of that name first (with `move_root`, also when the root is
        recorded at another folder: a source's mirror, which each replica keeps in its own folder)."""
        return self._locked(lambda run: _index(run, paths or [], add_root, move_root), progress, paths)

    def remove(self, targets: list[str]) -> IndexStats:
        """Removes the documents under each target: a path inside a root (a file or folder, there or
        not), a root's folder or name (a named root is forgotten), or a document key or folder key."""
        return self._locked(lambda run: remove_targets(run, targets))

    def prune(self) -> IndexStats:
        """Removes the documents whose files are no longer in their roots."""
        return self._locked(prune_vanished)

    def listing(self) -> IndexListing:
        """The roots with their document counts, and the failed files, from the manifest alone: no lock
        (it is replaced atomically) and no Chroma, so it answers while another process indexes."""
        manifest = load_manifest(self.manifest_path) or Manifest()
        default = default_root(self.docs_dir, [], manifest)
        adopt_legacy(manifest, default)
        names = set(manifest.roots) | ({DEFAULT_ROOT} if default is not None else set())
        roots = []
        for name in sorted(names):
            entry = manifest.roots.get(name, RootEntry(""))
            path = str(default) if name == DEFAULT_ROOT and default is not None else entry.path
            docs = [
                DocumentListing(key, e.title, len(e.chunk_ids), e.updated, e.indexed_at)
                for key, e in sorted(manifest.files.items())
                if e.root == name
            ]
            roots.append(
                RootListing(
                    name,
                    path,
                    docs,
                    entry.indexed_at,
                    Path(path).is_dir(),
                    entry.path if entry.path not in ("", path) else None,
                    Exclusions.for_root(Path(path), self.config.exclude).describe(),
                )
            )
        return IndexListing(roots, manifest.failures)

    def _locked(
        self, work: Callable[[IndexRun], IndexStats], progress: bool = False, paths: list[Path] | None = None
    ) -> IndexStats:
        started = time.perf_counter()
        with acquire_index_lock(self.config):
            run = IndexRun(self.config, self.manifest_path, self.docs_dir, lambda: self.embedder, progress)
            run.open(paths or [])
            stats = work(run)
        stats.seconds = time.perf_counter() - started
        return stats


def _index(run: IndexRun, paths: list[Path], add_root: str | None, move_root: bool = False) -> IndexStats:
    scopes = plan(run, paths, add_root, move_root)
    files = discover(run, scopes)
    write_files(run, files)
    remove_missing(run, scopes, {f.key for f in files})
    _pair_renames(run)
    _settle(run, scopes)
    run.reconcile([(s.root, s.prefix) for s in scopes])
    return run.stats


def _pair_renames(run: IndexRun) -> None:
    """A document removed and one added with the same content is one file renamed: shown as such."""
    added: dict[str, list[str]] = {}
    for key, digest in run.added:
        added.setdefault(digest, []).append(key)
    for old, digest in run.gone:
        if added.get(digest):
            new = added[digest].pop(0)
            run.stats.renames.append((old, new))
            run.stats.removals.remove(old)
            run.stats.renamed += 1
            run.stats.added -= 1
            run.stats.removed -= 1


def _settle(run: IndexRun, scopes: list[Scope]) -> None:
    """Forgets the failures this run did not see again in its scopes; notes when each root was indexed."""
    for key, failure in list(run.manifest.failures.items()):
        if key not in run.failed_keys and any(failure.root == s.root and is_under(key, s.prefix) for s in scopes):
            del run.manifest.failures[key]
    indexed_at = now()
    for scope in scopes:
        entry = run.manifest.roots.setdefault(scope.root, RootEntry(str(scope.folder)))
        entry.indexed_at = indexed_at
        if scope.target == scope.folder:
            entry.path = str(scope.folder)  # the default root: this folder is now the one indexed
    run.save_manifest()

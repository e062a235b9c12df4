"""Incremental indexing: files -> Documents -> Chunks -> vectors -> Chroma, then the BM25 index.

Crash safety rests on three rules (docs/indexing.md has the reasoning):
1. chunk ids are stable (sha1(path) + ordinal) and written with upsert, so redoing work is harmless;
2. the manifest is replaced atomically and only after a file's chunks are in Chroma;
3. every run ends by deleting whatever the collection holds that the manifest does not expect.
Embeddings are reused by the hash of the text that was embedded, so an unchanged file costs nothing,
a rename costs nothing, and an edit re-embeds only the chunks whose text changed.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import hashlib
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from retrieval.chunking import chunk_document
from retrieval.config import IndexConfig
from retrieval.embeddings import Embedder, embedder_for
from retrieval.errors import IndexRequestError, LoadError, ModelMismatchError
from retrieval.exclude import IGNORE_FILE, SETTING, Exclusions
from retrieval.lexical import build_lexical, saved_stamp, tags_field
from retrieval.loaders import is_supported, load_document
from retrieval.manifest import (
    DEFAULT_ROOT,
    Failure,
    FileEntry,
    Manifest,
    RootEntry,
    doc_key,
    is_under,
    load_manifest,
    save_manifest,
)
from retrieval.models import Chunk, FileProblem, IndexStats
from retrieval.store import (
    PAGE,
    acquire_index_lock,
    check_model,
    iter_collection,
    model_mismatch_message,
    new_stamp,
    open_collection,
    read_stamp,
    record_model,
    write_stamp,
)

# A root added by name: its documents are keyed NAME/path, so a name is one plain path segment.
ROOT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass
class _SourceFile:
    root: str  # the root's name
    key: str  # document key: the path inside the root, prefixed with a named root's name
    path: Path  # where to read it
    shown: str  # how to name it in messages (as the user wrote the PATH)


@dataclass
class _Scope:
    """The part of one root a run indexes: the root's folder, a folder inside it, or one file."""

    root: str
    folder: Path  # the root's folder, resolved
    target: Path  # resolved, inside `folder` (or `folder` itself)
    shown: Path  # the target as the admin wrote it

    @property
    def prefix(self) -> str:
        """The key of the target: every document it covers is at or under it ("" is a whole default root)."""
        rel = self.target.relative_to(self.folder).as_posix()
        return self.root if rel == "." else doc_key(self.root, rel)


@dataclass
class _Pending:
    file: _SourceFile
    hash: str
    chunks: list[Chunk]
    new: bool
    title: str
    updated: str | None


@dataclass
class _Batch:
    pending: list[_Pending]
    chunks: list[Chunk]
    hashes: list[str]  # of each chunk's embedded text
    vectors: dict[str, np.ndarray]  # by text hash: reused ones now, embedded ones once `encoded` is done
    todo: list[str]  # hashes being embedded, in the order of `encoded`'s rows
    encoded: Future[np.ndarray] | None


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


# Part of every file's hash. Bumped when chunk metadata gains something (v2: the archived flag; v3: the
# manifest's title and date): the next run then re-reads every file once, reusing its embeddings, so an
# unchanged file gets it too.
METADATA_VERSION = b"qwenbot-metadata-v3\n"
# Embedding batches' worth of chunks gathered before they are embedded and written (512 chunks at the
# CPU's batch of 8): enough for sorting by length to cut padding and for each Chroma write to be large.
WINDOW_BATCHES = 64


def text_hash(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


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


def chunk_metadata(
    chunk: Chunk, embedded_hash: str, doc_hash: str, root: str, root_path: str | None = None
) -> dict[str, Any]:
    """`root` is the root's name, `root_path` its folder: together they let a lost manifest be rebuilt.
    Absent values are None, not left out: Chroma's upsert merges metadata into the stored chunk's, and
    None deletes a key, so an edited file that lost its `url` does not keep the old one."""
    meta: dict[str, Any] = {
        "path": chunk.path,
        "ordinal": chunk.ordinal,
        "title": chunk.title,
        "heading_path": chunk.heading_path,
        "text_hash": embedded_hash,
        "doc_hash": doc_hash,
        "root": root,
        "root_path": root_path,
        "tags": tags_field(chunk.tags),
        "page": chunk.page,
        "url": chunk.url,
        "owner": chunk.owner,
        "updated": chunk.updated,
        "archived": chunk.archived,
    }
    return meta


def adopt_legacy(manifest: Manifest, default: Path | None) -> list[str]:
    """Moves entries of a manifest from before roots (their `root` is the absolute PATH they were indexed
    through) into roots, keeping their keys and chunks: a file inside the docs folder joins the default
    root, any other folder becomes a root named after it. A key that is not the file's path inside its
    root (the duplicates `qwenbot index FOLDER/file.md` used to make) is not found by the next run over
    that root, which removes it, or shows it as a rename to the right key; no text is embedded again.
    Returns notes for the admin."""
    named: dict[Path, str] = {}
    moved = 0
    for key, entry in manifest.files.items():
        through = Path(entry.root)
        if not through.is_absolute():
            continue
        moved += 1
        file = through if through.name == key and not through.is_dir() else through / key
        if default is not None and file.is_relative_to(default):
            entry.root = DEFAULT_ROOT
            manifest.roots.setdefault(DEFAULT_ROOT, RootEntry(str(default)))
            continue
        folder = through if file != through else through.parent
        if folder not in named:
            base = re.sub(r"[^A-Za-z0-9._-]", "-", folder.name).lstrip("._-") or "root"
            name, n = base, 1
            while name in manifest.roots:
                n += 1
                name = f"{base}-{n}"
            manifest.roots[name] = RootEntry(str(folder))
            named[folder] = name
        entry.root = named[folder]
    notes = [f"the index predates roots: {moved} documents moved into roots"] if moved else []
    notes.extend(
        f"documents indexed from {folder}, outside the docs folder, are kept as root {name!r}: "
        f"`qwenbot index` re-keys them as {name}/..., `qwenbot index --remove {name}` drops them"
        for folder, name in named.items()
    )
    return notes


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

    def run(self, paths: list[Path] | None = None, progress: bool = True, *, add_root: str | None = None) -> IndexStats:
        """Indexes `paths` (files and folders inside the roots; none: every root). With `add_root`, the
        one folder in `paths` becomes a root of that name first."""
        return self._locked(lambda run: run.index(paths or [], add_root), progress, paths)

    def remove(self, targets: list[str]) -> IndexStats:
        """Removes the documents under each target: a path inside a root (a file or folder, there or
        not), a root's folder or name (a named root is forgotten), or a document key or folder key."""
        return self._locked(lambda run: run.remove(targets))

    def prune(self) -> IndexStats:
        """Removes the documents whose files are no longer in their roots."""
        return self._locked(lambda run: run.prune())

    def listing(self) -> IndexListing:
        """The roots with their document counts, and the failed files, from the manifest alone: no lock
        (it is replaced atomically) and no Chroma, so it answers while another process indexes."""
        manifest = load_manifest(self.manifest_path) or Manifest()
        default = self._default_root([], manifest)
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
        self, work: Callable[[_Run], IndexStats], progress: bool = False, paths: list[Path] | None = None
    ) -> IndexStats:
        started = time.perf_counter()
        with acquire_index_lock(self.config):
            run = _Run(self, progress)
            run.open(paths or [])
            stats = work(run)
        stats.seconds = time.perf_counter() - started
        return stats

    def _default_root(self, paths: list[Path], manifest: Manifest) -> Path | None:
        """The default root's folder, resolved: the configured docs folder, else the first PATH's, else
        the one last indexed; None when there is none of these."""
        if self.docs_dir is not None:
            return self.docs_dir.resolve()
        if paths:
            first = paths[0].resolve()
            return first if not first.is_file() else first.parent
        recorded = manifest.roots.get(DEFAULT_ROOT)
        return Path(recorded.path) if recorded is not None else None


class _Run:
    """The state of one indexer run."""

    def __init__(self, indexer: Indexer, progress: bool) -> None:
        self.indexer = indexer
        self.config = indexer.config
        self.progress = progress
        self.stats = IndexStats()
        self.collection: Any = None
        self.manifest = Manifest()
        self.manifest_path = indexer.manifest_path
        self.default: Path | None = None  # the default root's folder, resolved
        self.known_hashes: set[str] = set()  # of the texts whose vectors the collection holds
        self.present_ids: set[str] = set()  # chunk ids in the collection when the run started
        # Set before a run's first write and cleared once BM25 and the stamp are up to date: still
        # there at the start of a run means the last one was killed after writing.
        self.dirty_marker = indexer.config.index_dir / ".dirty"
        self.touched = self.dirty_marker.exists()  # whether the collection changed since the last stamp
        self.manifest_dirty = False
        self.added: list[tuple[str, str]] = []  # (key, hash) of files new to the index this run
        self.gone: list[tuple[str, str]] = []  # (key, hash) of documents removed this run
        self.failed_keys: set[str] = set()
        self.excluded: set[str] = set()  # keys of files named in a PATH that an exclusion keeps out
        self._exclusions: dict[str, Exclusions] = {}
        # One batch is embedded on this thread while the run goes on reading and chunking the next:
        # the model keeps the cores busy instead of waiting for the parser.
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="qwenbot-embed")
        self.in_flight: _Batch | None = None  # submitted for embedding, not yet written

    def open(self, paths: list[Path]) -> None:
        self.config.index_dir.mkdir(parents=True, exist_ok=True)
        self.collection = open_collection(self.config, create=True)
        check_model(self.config, self.collection.metadata or {})
        self.manifest = self._load_manifest()
        self.default = self.indexer._default_root(paths, self.manifest)
        notes = adopt_legacy(self.manifest, self.default)
        if notes:
            self.stats.notes.extend(notes)
            self._save_manifest()
        record_model(self.collection, self.config)

    def roots(self) -> dict[str, Path]:
        """Root name -> folder, the default root being the configured docs folder."""
        roots = {name: Path(entry.path) for name, entry in self.manifest.roots.items()}
        if self.default is not None:
            roots[DEFAULT_ROOT] = self.default
        return roots

    # --- indexing --------------------------------------------------------------------------------

    def index(self, paths: list[Path], add_root: str | None) -> IndexStats:
        scopes = self._plan(paths, add_root)
        files = self._discover(scopes)
        pending: list[_Pending] = []
        pending_chunks = 0
        window = self.config.batch_size * WINDOW_BATCHES
        bar = tqdm(total=len(files), unit="file", file=sys.stderr, disable=not self.progress, desc="indexing")
        changed = Counter[bool]()  # by whether the file is new: written in batches, counted as read
        try:
            for source in files:
                item = self._prepare(source)
                if item is not None:
                    changed[item.new] += 1
                    pending.append(item)
                    pending_chunks += len(item.chunks)
                    if pending_chunks >= window:
                        self._submit(pending)
                        pending, pending_chunks = [], 0
                bar.update()
                bar.set_postfix_str(
                    f"{changed[True]} new, {changed[False]} changed, {self.stats.unchanged} unchanged, "
                    f"{self.stats.failed} failed",
                    refresh=False,
                )
            self._submit(pending)
            self._write(self.in_flight)
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)
            bar.close()
        self._remove_missing(scopes, {f.key for f in files})
        self._pair_renames()
        self._settle(scopes)
        self._reconcile()
        return self.stats

    def _plan(self, paths: list[Path], add_root: str | None) -> list[_Scope]:
        """What to index, checked before anything is written: every PATH must lie in a root."""
        roots = self.roots()
        if add_root is not None:
            roots[add_root] = self._add_root(add_root, paths, roots)
        scopes: list[_Scope] = []
        if not paths:
            for name, folder in sorted(roots.items()):
                shown = self.indexer.docs_dir if name == DEFAULT_ROOT and self.indexer.docs_dir else folder
                if folder.is_dir():
                    scopes.append(_Scope(name, folder, folder, shown))
                elif name == DEFAULT_ROOT and self.indexer.docs_dir is not None:
                    # a setting to fix, not a file that failed: nothing is counted
                    raise IndexRequestError(
                        f"QWENBOT_DOCS_DIR is {self.indexer.docs_dir.absolute()}, which is not a folder: "
                        "set it to the folder that holds your documents"
                    )
                else:
                    where = "QWENBOT_DOCS_DIR" if name == DEFAULT_ROOT else f"root {name!r}: `--remove {name}` drops it"
                    self._problem(str(shown), f"no such folder ({where})")
        outside = []
        for given in paths:
            target = _absolute(given)
            if not target.exists():
                # its documents stay: a typo must not empty the index
                self._problem(str(given), "no such file or folder")
                continue
            inside = [name for name, folder in roots.items() if target.is_relative_to(folder)]
            if not inside:
                outside.append(str(given))
                continue
            name = max(inside, key=lambda n: len(roots[n].parts))  # the innermost root
            scopes.append(_Scope(name, roots[name], target, given))
        if outside:
            where = f"QWENBOT_DOCS_DIR is {self.default}" if self.default is not None else "no docs folder is set"
            named = ", ".join(f"{n} ({roots[n]})" for n in sorted(roots) if n != DEFAULT_ROOT)
            raise IndexRequestError(
                f"{', '.join(outside)}: outside the indexed folders ({where}"
                + (f"; named roots: {named}" if named else "")
                + "). Move it into the docs folder, or index it as a root of its own: "
                f"qwenbot index {outside[0]} --add-root NAME"
            )
        recorded = self.manifest.roots.get(DEFAULT_ROOT)
        moved = self.default is not None and recorded is not None and Path(recorded.path) != self.default
        if moved and self.default is not None and self.default.is_dir() and recorded is not None:
            # The docs folder moved: the old one's documents must not keep answering. Keys are relative
            # to the root, so indexing the new folder in full replaces them.
            if not any(s.root == DEFAULT_ROOT and s.target == s.folder for s in scopes):
                scopes.append(_Scope(DEFAULT_ROOT, self.default, self.default, self.indexer.docs_dir or self.default))
            self.stats.notes.append(
                f"QWENBOT_DOCS_DIR is now {self.default} (was {recorded.path}): indexed the new folder in full; "
                "documents that were only in the old one are removed"
            )
        return scopes

    def _add_root(self, name: str, paths: list[Path], roots: dict[str, Path]) -> Path:
        """Records `paths[0]` as the root `name`, after checking it can be one."""
        if len(paths) != 1 or not paths[0].is_dir():
            raise IndexRequestError("--add-root NAME takes exactly one PATH, the folder to index as that root")
        folder = paths[0].resolve()
        if not ROOT_NAME.fullmatch(name):
            raise IndexRequestError(
                f"root name {name!r}: use letters, digits, '.', '_' or '-' "
                "(it becomes the first part of each document's path)"
            )
        if name in roots:
            if roots[name] == folder:
                return folder  # already that root: indexing it again is harmless
            raise IndexRequestError(f"root {name!r} is already {roots[name]}; choose another name")
        for other, where in roots.items():
            if folder.is_relative_to(where) or where.is_relative_to(folder):
                label = "the docs folder (QWENBOT_DOCS_DIR)" if other == DEFAULT_ROOT else f"root {other!r}"
                raise IndexRequestError(f"{paths[0]} overlaps {label} at {where}; a file belongs to one root only")
        if self.manifest.keys_under(DEFAULT_ROOT, name) or (
            self.default is not None and (self.default / name).exists()
        ):
            raise IndexRequestError(
                f"root name {name!r} is also a folder in the docs folder, so document paths would collide; "
                "choose another name"
            )
        self.manifest.roots[name] = RootEntry(str(folder))
        self._save_manifest()
        self.stats.notes.append(f"added root {name!r} ({folder}): its documents are keyed {name}/...")
        return folder

    def _discover(self, scopes: list[_Scope]) -> list[_SourceFile]:
        """Supported files in every scope, each once; unsupported and refused ones are counted as skipped,
        excluded ones passed over (or, named in a PATH, skipped)."""
        files: dict[str, _SourceFile] = {}
        for scope in scopes:
            exclusions = self.exclusions(scope.root)

            def kept(path: Path, is_dir: bool, scope: _Scope = scope, exclusions: Exclusions = exclusions) -> bool:
                return exclusions.match(path.relative_to(scope.folder).as_posix(), is_dir) is None

            if scope.target.is_file():
                candidates = [(scope.target, scope.shown)]
            else:
                candidates = [(path, scope.shown / rel) for path, rel in _walk(scope.target, kept)]
            for path, shown in candidates:
                rel = path.relative_to(scope.folder).as_posix()
                key = doc_key(scope.root, rel)
                if key in files:
                    continue  # the same file reached through two PATHs
                source = _SourceFile(scope.root, key, path, str(shown))
                if (rule := exclusions.match(rel)) is not None:
                    self.excluded.add(key)
                    self._skip(source, f"excluded by {rule.pattern!r} in {rule.source}")
                    continue
                if not is_supported(path):
                    self._skip(source, f"unsupported file type ({path.suffix or 'no suffix'})")
                    continue
                refusal = _refusal(path, scope.folder, self.config.follow_symlinks_outside)
                if refusal is None:
                    files[key] = source
                else:
                    self._skip(source, refusal)
        return list(files.values())

    def exclusions(self, root: str) -> Exclusions:
        """The root's exclusions, read once per run."""
        if root not in self._exclusions:
            self._exclusions[root] = Exclusions.for_root(self.roots()[root], self.config.exclude)
        return self._exclusions[root]

    def _prepare(self, source: _SourceFile) -> _Pending | None:
        """Hashes the file; loads and chunks it only when it is new or changed."""
        try:
            size = source.path.stat().st_size
            if size > self.config.max_file_bytes:  # a giant file would cost memory and time far beyond its use
                mb, limit = size / 2**20, self.config.max_file_bytes / 2**20
                self._skip(source, f"{mb:.1f} MB is over the {limit:.1f} MB limit (QWENBOT_MAX_FILE_MB)")
                return None
            data = source.path.read_bytes()
        except OSError as exc:
            self._fail(source, f"cannot read file: {exc.strerror or exc}", None)
            return None
        digest = hashlib.sha256(METADATA_VERSION + data).hexdigest()
        entry = self.manifest.files.get(source.key)
        if entry is not None and entry.root != source.root:
            owner = "the docs folder" if entry.root == DEFAULT_ROOT else f"root {entry.root!r}"
            self._fail(source, f"its path {source.key!r} is already a document of {owner}; skipped", digest)
            return None
        if entry is not None and entry.hash == digest:
            self.stats.unchanged += 1
            return None
        try:
            doc = load_document(source.path, source.key)
            chunks = chunk_document(
                doc, self.indexer.embedder, self.config.chunk_tokens, self.config.chunk_overlap_tokens
            )
        except LoadError as exc:
            self._fail(source, str(exc), digest)
            return None
        except Exception as exc:  # noqa: BLE001 - whatever one file makes a parser raise fails that file alone
            self._fail(source, f"cannot read it ({type(exc).__name__}: {_first_line(exc)})", digest)
            return None
        return _Pending(source, digest, chunks, entry is None, doc.title, doc.updated)

    def _submit(self, pending: list[_Pending]) -> None:
        """Starts embedding the pending files' chunks (reusing stored vectors where it can), then writes
        the previous batch while this one is being embedded."""
        batch = None
        if pending:
            chunks = [c for p in pending for c in p.chunks]
            hashes = [text_hash(c.embed_text) for c in chunks]
            vectors = self._reused_vectors(hashes)
            todo = list(dict.fromkeys(h for h in hashes if h not in vectors))  # identical texts embedded once
            texts = {h: c.embed_text for h, c in zip(hashes, chunks, strict=True)}
            encoded = self.pool.submit(self.indexer.embedder.encode, [texts[h] for h in todo]) if todo else None
            self.stats.chunks_embedded += len(todo)
            self.stats.chunks_reused += len(chunks) - len(todo)
            batch = _Batch(pending, chunks, hashes, vectors, todo, encoded)
        self._write(self.in_flight)
        self.in_flight = batch

    def _write(self, batch: _Batch | None) -> None:
        """Writes a batch's chunks, deletes its files' surplus old chunks, then records it in the manifest."""
        if batch is None:
            return
        pending, chunks, hashes, vectors = batch.pending, batch.chunks, batch.hashes, batch.vectors
        if batch.encoded is not None:
            vectors.update(zip(batch.todo, batch.encoded.result(), strict=True))
        self._touch()
        owners = [p for p in pending for _ in p.chunks]
        roots = self.roots()
        metas = [
            chunk_metadata(c, h, p.hash, p.file.root, str(roots[p.file.root]))
            for c, h, p in zip(chunks, hashes, owners, strict=True)
        ]
        for start in range(0, len(chunks), PAGE):
            part = slice(start, start + PAGE)
            self.collection.upsert(
                ids=[c.id for c in chunks[part]],
                embeddings=np.stack([vectors[h] for h in hashes[part]]),
                documents=[c.text for c in chunks[part]],
                metadatas=metas[part],
            )
        surplus: list[str] = []
        offset = 0
        now = _now()
        for p in pending:
            old = self.manifest.files.get(p.file.key)
            new_ids = [c.id for c in p.chunks]
            if old is not None:
                surplus.extend(set(old.chunk_ids) - set(new_ids))
            own_hashes = hashes[offset : offset + len(p.chunks)]
            offset += len(p.chunks)
            self.manifest.files[p.file.key] = FileEntry(
                p.file.root, p.hash, new_ids, self.config.embedding_model, own_hashes, p.title, p.updated, now
            )
            if p.new:
                self.stats.added += 1
                self.added.append((p.file.key, p.hash))
            else:
                self.stats.updated += 1
        if surplus:
            self.collection.delete(ids=surplus)
        self.known_hashes.update(hashes)
        self._save_manifest()

    def _reused_vectors(self, hashes: list[str]) -> dict[str, np.ndarray]:
        """Vectors already in the collection for these embedded-text hashes."""
        wanted = sorted({h for h in hashes if h in self.known_hashes})
        found: dict[str, np.ndarray] = {}
        for start in range(0, len(wanted), PAGE):
            got = self.collection.get(
                where={"text_hash": {"$in": wanted[start : start + PAGE]}}, include=["embeddings", "metadatas"]
            )
            for meta, vector in zip(got["metadatas"], got["embeddings"], strict=True):
                found[meta["text_hash"]] = np.asarray(vector, dtype=np.float32)
        return found

    def _remove_missing(self, scopes: list[_Scope], seen: set[str]) -> None:
        """Documents in a folder this run walked whose files are no longer there (or no longer read)."""
        gone = {key for s in scopes if s.target.is_dir() for key in self.manifest.keys_under(s.root, s.prefix)}
        self._drop(sorted((gone - seen) | (self.excluded & self.manifest.files.keys())))

    def _pair_renames(self) -> None:
        """A document removed and one added with the same content is one file renamed: shown as such."""
        added: dict[str, list[str]] = {}
        for key, digest in self.added:
            added.setdefault(digest, []).append(key)
        for old, digest in self.gone:
            if added.get(digest):
                new = added[digest].pop(0)
                self.stats.renames.append((old, new))
                self.stats.removals.remove(old)
                self.stats.renamed += 1
                self.stats.added -= 1
                self.stats.removed -= 1

    def _settle(self, scopes: list[_Scope]) -> None:
        """Forgets the failures this run did not see again in its scopes; notes when each root was indexed."""
        for key, failure in list(self.manifest.failures.items()):
            if key not in self.failed_keys and any(failure.root == s.root and is_under(key, s.prefix) for s in scopes):
                del self.manifest.failures[key]
        now = _now()
        for scope in scopes:
            entry = self.manifest.roots.setdefault(scope.root, RootEntry(str(scope.folder)))
            entry.indexed_at = now
            if scope.target == scope.folder:
                entry.path = str(scope.folder)  # the default root: this folder is now the one indexed
        self._save_manifest()

    # --- removing --------------------------------------------------------------------------------

    def remove(self, targets: list[str]) -> IndexStats:
        keys: set[str] = set()
        forget: set[str] = set()
        for target in targets:
            found, root, prefix = self._resolve(target)
            if not found and root is None:
                raise IndexRequestError(
                    f"{target}: nothing indexed there (give a file or folder inside a root, a root's folder "
                    "or name, or a document path as sources show it; `qwenbot index --list` shows the roots)"
                )
            if root is None or root == DEFAULT_ROOT:  # a named root as a whole is forgotten: never read again
                self._refuse_if_on_disk(target, found, prefix)
            keys.update(found)
            if root is not None and root != DEFAULT_ROOT:
                forget.add(root)
        self._drop(sorted(keys))
        for key in [k for k in self.manifest.failures if any(is_under(k, t) for t in keys)]:
            del self.manifest.failures[key]
        for name in forget:
            self.manifest.roots.pop(name, None)
            self.manifest.failures = {k: f for k, f in self.manifest.failures.items() if f.root != name}
            self.stats.notes.append(f"root {name!r} forgotten: `qwenbot index` no longer reads it")
        self._save_manifest()
        self._reconcile()
        return self.stats

    def _resolve(self, target: str) -> tuple[list[str], str | None, str]:
        """The keys a --remove target names, the root when it names a whole one, and the document or
        folder key it names."""
        path = _absolute(Path(target))
        folders = list(self.roots().items())
        recorded = self.manifest.roots.get(DEFAULT_ROOT)
        if recorded is not None:  # the docs folder indexed last, should QWENBOT_DOCS_DIR have moved since
            folders.append((DEFAULT_ROOT, Path(recorded.path)))
        for name, folder in sorted(folders, key=lambda item: -len(item[1].parts)):
            if path.is_relative_to(folder):
                rel = path.relative_to(folder).as_posix()
                if rel == ".":
                    return self.manifest.keys_under(name), name, name
                prefix = doc_key(name, rel)
                return self.manifest.keys_under(name, prefix), None, prefix
        if target in self.manifest.roots and target != DEFAULT_ROOT:
            return self.manifest.keys_under(target), target, target
        prefix = target.strip("/")
        return [k for k in self.manifest.files if prefix and is_under(k, prefix)], None, prefix

    def _refuse_if_on_disk(self, target: str, keys: list[str], prefix: str) -> None:
        """Removing a document whose file is still in its root, not excluded, would last until the next
        run: refused, with the line that keeps it out for good."""
        on_disk = [key for key in keys if self._on_disk(key)]
        if not on_disk:
            return
        root = self.manifest.files[on_disk[0]].root
        rel = prefix if root == DEFAULT_ROOT else prefix.removeprefix(root).lstrip("/")
        ignore = self.roots()[root] / IGNORE_FILE
        if not rel:
            raise IndexRequestError(
                f"{target} is the docs folder itself, whose files are indexed while they are there; nothing "
                f"removed. Point QWENBOT_DOCS_DIR at another folder, or exclude files in {ignore} or {SETTING}"
            )
        where = "the docs folder" if root == DEFAULT_ROOT else f"root {root!r}"
        one = on_disk == [prefix]  # the target is that document, not a folder holding it
        n = len(on_disk)
        what = f"{target} is" if one else f"{target}: {n} of its documents {'is' if n == 1 else 'are'}"
        them = "it" if n == 1 else "them"
        raise IndexRequestError(
            f"{what} still in {where}, so the next `qwenbot index` would add {them} back; nothing removed. "
            f"Delete {them}, or exclude {them}: add the line `{rel if one else rel + '/'}` to {ignore} "
            f"(or to {SETTING}), then run `qwenbot index`, which removes {them}"
        )

    def _on_disk(self, key: str) -> bool:
        """Whether the document's file is in its root, and not excluded: the next run would index it."""
        entry = self.manifest.files[key]
        folder = self.roots().get(entry.root)
        rel = key if entry.root == DEFAULT_ROOT else key.removeprefix(f"{entry.root}/")
        return folder is not None and (folder / rel).is_file() and self.exclusions(entry.root).match(rel) is None

    def prune(self) -> IndexStats:
        roots = self.roots()
        gone = []
        for key, entry in self.manifest.files.items():
            folder = roots.get(entry.root)
            rel = key if entry.root == DEFAULT_ROOT else key.removeprefix(f"{entry.root}/")
            if folder is None or not (folder / rel).is_file():
                gone.append(key)
        self._drop(gone)
        for key, failure in list(self.manifest.failures.items()):
            if not Path(failure.path).is_file():
                del self.manifest.failures[key]
        for name in [n for n in self.manifest.roots if n != DEFAULT_ROOT and not roots[n].is_dir()]:
            del self.manifest.roots[name]
            self.stats.notes.append(f"root {name!r} forgotten: its folder {roots[name]} is gone")
        self._save_manifest()
        self._reconcile()
        return self.stats

    def _drop(self, keys: list[str]) -> None:
        """Deletes these documents' chunks, then their manifest entries."""
        if not keys:
            return
        self._touch()
        ids = [cid for key in keys for cid in self.manifest.files[key].chunk_ids]
        for start in range(0, len(ids), PAGE):
            self.collection.delete(ids=ids[start : start + PAGE])
        for key in keys:
            self.gone.append((key, self.manifest.files.pop(key).hash))
        self.stats.removed += len(keys)
        self.stats.removals.extend(keys)
        self._save_manifest()

    # --- the end of every run --------------------------------------------------------------------

    def _reconcile(self) -> None:
        """Deletes what the manifest does not expect (left by a killed run); refreshes BM25 if needed."""
        if self.manifest_dirty:
            self._save_manifest()
        expected = self.manifest.expected_ids()
        present = self._all_ids() if self.touched else self.present_ids
        orphans = sorted(present - expected)
        if orphans:
            self._touch()
            for start in range(0, len(orphans), PAGE):
                self.collection.delete(ids=orphans[start : start + PAGE])
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

    # --- helpers -------------------------------------------------------------------------------

    def _load_manifest(self) -> Manifest:
        """The manifest, checked against the collection: entries whose chunks are gone are dropped
        (they get indexed again), and a missing manifest is rebuilt from the chunks' metadata."""
        manifest = load_manifest(self.manifest_path)
        if manifest is not None and manifest.embedding_model not in (None, self.config.embedding_model):
            raise ModelMismatchError(model_mismatch_message(self.config, manifest.embedding_model))
        self.present_ids = self._all_ids()
        if manifest is None:
            manifest = Manifest(self.config.embedding_model)
            files: dict[str, list[tuple[int, str, dict[str, Any]]]] = {}
            for page in iter_collection(self.collection, ["metadatas"]):
                for cid, meta in zip(page["ids"], page["metadatas"], strict=True):
                    files.setdefault(meta.get("path", ""), []).append((int(meta.get("ordinal", 0)), cid, meta))
            for path, rows in files.items():
                rows.sort(key=lambda r: r[0])
                meta = rows[0][2]
                if "doc_hash" in meta and "root" in meta:
                    ids = [cid for _, cid, _ in rows]
                    text_hashes = [m.get("text_hash", "") for _, _, m in rows]
                    manifest.files[path] = FileEntry(
                        meta["root"],
                        meta["doc_hash"],
                        ids,
                        self.config.embedding_model,
                        text_hashes,
                        meta.get("title"),
                        meta.get("updated"),
                    )
                    if "root_path" in meta:  # absent from chunks written before roots: `root` is a path there
                        manifest.roots.setdefault(meta["root"], RootEntry(meta["root_path"]))
        for path, entry in list(manifest.files.items()):
            if not self.present_ids.issuperset(entry.chunk_ids):
                del manifest.files[path]
        manifest.embedding_model = self.config.embedding_model
        # What can be reused: the manifest's texts, and those of chunks a killed run left unrecorded.
        self.known_hashes = manifest.text_hashes()
        orphans = sorted(self.present_ids - manifest.expected_ids())
        for page in iter_collection(self.collection, ["metadatas"], orphans):
            self.known_hashes.update(m.get("text_hash", "") for m in page["metadatas"])
        return manifest

    def _save_manifest(self) -> None:
        save_manifest(self.manifest, self.manifest_path)
        self.manifest_dirty = False

    def _all_ids(self) -> set[str]:
        return set(self.collection.get(include=[])["ids"])  # ids alone are small: one call, no paging

    def _touch(self) -> None:
        """Before the first write of a run: leave the marker that makes the next run rebuild BM25 and
        move the stamp should this one be killed before it does so itself."""
        if not self.touched:
            self.touched = True
            self.dirty_marker.touch()

    def _problem(self, shown: str, reason: str) -> None:
        """A PATH that could not be indexed at all: always a new failure."""
        self.stats.failed += 1
        self.stats.failed_new += 1
        self.stats.problems.append(FileProblem(shown, reason))

    def _fail(self, source: _SourceFile, reason: str, digest: str | None) -> None:
        """A file that could not be indexed. New unless the last run recorded the same failure for the
        file as it is now: an old broken file nobody touched must not fail every later run."""
        before = self.manifest.failures.get(source.key)
        new = before is None or before.hash != digest or (digest is None and before.reason != reason)
        since = _now() if new or before is None else before.since
        self.manifest.failures[source.key] = Failure(source.root, str(source.path), reason, digest, since)
        self.manifest_dirty = True
        self.failed_keys.add(source.key)
        self.stats.failed += 1
        self.stats.failed_new += new
        self.stats.problems.append(FileProblem(source.shown, reason, new=new))

    def _skip(self, source: _SourceFile, reason: str) -> None:
        """Not read on purpose: counted as skipped (not a failure), and named in the summary."""
        self.stats.skipped += 1
        self.stats.problems.append(FileProblem(source.shown, reason, skipped=True))


# Key material and credentials: never indexed, whatever their suffix says, nor through a link.
_SECRET_NAMES = ("id_rsa*", "id_dsa*", "id_ecdsa*", "id_ed25519*", "credentials*", ".env*", ".netrc*", ".pgpass*")
_SECRET_SUFFIXES = frozenset({".env", ".pem", ".key", ".p12", ".pfx", ".jks", ".keystore", ".ppk"})


def _refusal(path: Path, root: Path, follow_outside: bool) -> str | None:
    """Why the file at `path` (found under `root`, resolved) must not be read; None when it may be."""
    real = path.resolve()
    if not follow_outside and not real.is_relative_to(root):
        return "a link to a file outside the indexed folder (QWENBOT_FOLLOW_SYMLINKS_OUTSIDE=true allows it)"
    for name in {path.name.lower(), real.name.lower()}:
        if any(fnmatch.fnmatch(name, p) for p in _SECRET_NAMES) or set(Path(name).suffixes) & _SECRET_SUFFIXES:
            return f"named like a secret ({name}); key material and credentials are never indexed"
    return None


def _absolute(path: Path) -> Path:
    """`path` with its folder resolved: a link to a file keeps its own name (and key), and is checked as
    a link when read; a folder resolves like the roots do."""
    return path.resolve() if path.is_dir() else path.parent.resolve() / path.name


def _walk(root: Path, kept: Callable[[Path, bool], bool]) -> Iterator[tuple[Path, str]]:
    """Files under `root` in a stable order, with their POSIX paths relative to it. Hidden files and
    folders (.git, .DS_Store) are not documents, nor what `kept(path, is_dir)` refuses (an exclusion):
    both are passed over without being counted."""
    for folder, dirs, names in os.walk(root):
        base = Path(folder)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and kept(base / d, True))
        prefix = base.relative_to(root).as_posix()
        prefix = "" if prefix == "." else prefix + "/"
        for name in sorted(names):
            if not name.startswith(".") and kept(base / name, False):
                yield base / name, prefix + name


def _first_line(exc: BaseException, limit: int = 120) -> str:
    """An unexpected exception's message as it fits a one-line report."""
    text = (str(exc).splitlines() or [""])[0]
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")

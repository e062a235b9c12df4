"""Incremental indexing: files -> Documents -> Chunks -> vectors -> Chroma, then the BM25 index.

Crash safety rests on three rules (docs/indexing.md has the reasoning):
1. chunk ids are stable (sha1(path) + ordinal) and written with upsert, so redoing work is harmless;
2. the manifest is replaced atomically and only after a file's chunks are in Chroma;
3. every run ends by deleting whatever the collection holds that the manifest does not expect.
Embeddings are reused by the hash of the text that was embedded, so an unchanged file costs nothing,
a rename costs nothing, and an edit re-embeds only the chunks whose text changed.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import sys
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from retrieval.chunking import chunk_document
from retrieval.config import IndexConfig
from retrieval.embeddings import Embedder, embedder_for
from retrieval.errors import LoadError, ModelMismatchError
from retrieval.lexical import build_lexical, saved_stamp, tags_field
from retrieval.loaders import is_supported, load_document
from retrieval.manifest import FileEntry, Manifest, load_manifest, save_manifest
from retrieval.models import Chunk, IndexStats
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


@dataclass
class _SourceFile:
    root: str  # absolute PATH argument it was found under
    rel: str  # document path: relative to the root, POSIX
    path: Path  # where to read it
    shown: str  # how to name it in messages (as the user wrote the PATH)


@dataclass
class _Pending:
    file: _SourceFile
    hash: str
    chunks: list[Chunk]
    new: bool


@dataclass
class _Batch:
    pending: list[_Pending]
    chunks: list[Chunk]
    hashes: list[str]  # of each chunk's embedded text
    vectors: dict[str, np.ndarray]  # by text hash: reused ones now, embedded ones once `encoded` is done
    todo: list[str]  # hashes being embedded, in the order of `encoded`'s rows
    encoded: Future[np.ndarray] | None


# Part of every file's hash. Bumped when chunk metadata gains something (v2: the archived flag): the
# next run then re-reads every file once, reusing its embeddings, so an unchanged file gets it too.
METADATA_VERSION = b"qwenbot-metadata-v2\n"


def text_hash(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def format_summary(stats: IndexStats) -> str:
    files = stats.added + stats.updated + stats.unchanged
    rate = stats.chunks_embedded / stats.seconds if stats.seconds > 0 else 0.0
    return (
        f"indexed {files} files: {stats.added} added, {stats.updated} updated, {stats.removed} removed, "
        f"{stats.unchanged} unchanged, {stats.skipped} skipped, {stats.failed} failed | "
        f"{stats.chunks_total} chunks ({stats.chunks_embedded} embedded, {stats.chunks_reused} reused) | "
        f"{stats.seconds:.1f} s, {rate:.1f} chunks/s"
    )


def chunk_metadata(chunk: Chunk, embedded_hash: str, doc_hash: str, root: str) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "path": chunk.path,
        "ordinal": chunk.ordinal,
        "title": chunk.title,
        "heading_path": chunk.heading_path,
        "text_hash": embedded_hash,
        "doc_hash": doc_hash,
        "root": root,
        "tags": tags_field(chunk.tags),
        "page": chunk.page,
        "url": chunk.url,
        "owner": chunk.owner,
        "updated": chunk.updated,
        "archived": chunk.archived,
    }
    return {k: v for k, v in meta.items() if v is not None}


class Indexer:
    """Indexes folders and files into the configured store. One run at a time per index."""

    def __init__(self, config: IndexConfig, embedder: Embedder | None = None) -> None:
        self.config = config
        self._embedder = embedder
        self.manifest_path = config.index_dir / "manifest.json"

    @property
    def embedder(self) -> Embedder:
        # Loaded on first need: a run where nothing changed never pays for the model.
        if self._embedder is None:
            self._embedder = embedder_for(self.config)
        return self._embedder

    def run(self, paths: list[Path], progress: bool = True) -> IndexStats:
        started = time.perf_counter()
        with acquire_index_lock(self.config):
            run = _Run(self, paths, progress)
            stats = run.execute()
        stats.seconds = time.perf_counter() - started
        return stats


class _Run:
    """The state of one indexer run."""

    def __init__(self, indexer: Indexer, paths: list[Path], progress: bool) -> None:
        self.indexer = indexer
        self.config = indexer.config
        self.paths = paths
        self.progress = progress
        self.stats = IndexStats()
        self.collection: Any = None
        self.manifest = Manifest()
        self.manifest_path = indexer.manifest_path
        self.known_hashes: set[str] = set()  # of the texts whose vectors the collection holds
        self.present_ids: set[str] = set()  # chunk ids in the collection when the run started
        # Set before a run's first write and cleared once BM25 and the stamp are up to date: still
        # there at the start of a run means the last one was killed after writing.
        self.dirty_marker = indexer.config.index_dir / ".dirty"
        self.touched = self.dirty_marker.exists()  # whether the collection changed since the last stamp
        self.manifest_dirty = False
        # One batch is embedded on this thread while the run goes on reading and chunking the next:
        # the model keeps the cores busy instead of waiting for the parser.
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="qwenbot-embed")
        self.in_flight: _Batch | None = None  # submitted for embedding, not yet written

    # --- the run ---------------------------------------------------------------------------------

    def execute(self) -> IndexStats:
        self.config.index_dir.mkdir(parents=True, exist_ok=True)
        self.collection = open_collection(self.config, create=True)
        check_model(self.config, self.collection.metadata or {})
        self.manifest = self._load_manifest()
        record_model(self.collection, self.config)
        files, roots = self._discover()
        seen: set[str] = set()
        pending: list[_Pending] = []
        flush_at = self.config.embedding_batch_size * 8
        bar = tqdm(total=len(files), unit="file", file=sys.stderr, disable=not self.progress, desc="indexing")
        try:
            for source in files:
                if source.rel in seen:
                    self._fail(source, f"also found under another indexed path as {source.rel!r}; skipped")
                    bar.update()
                    continue
                seen.add(source.rel)
                item = self._prepare(source)
                if item is not None:
                    pending.append(item)
                    if sum(len(p.chunks) for p in pending) >= flush_at:
                        self._submit(pending)
                        pending = []
                bar.update()
                bar.set_postfix(embedded=self.stats.chunks_embedded, reused=self.stats.chunks_reused, refresh=False)
            self._submit(pending)
            self._write(self.in_flight)
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)
            bar.close()
        self._remove_missing(roots, seen)
        self._reconcile()
        return self.stats

    def _discover(self) -> tuple[list[_SourceFile], list[str]]:
        """Supported files under every PATH; unsupported ones are counted as skipped."""
        files: list[_SourceFile] = []
        roots: list[str] = []
        for given in self.paths:
            root = given.resolve()
            if root.is_file():
                candidates = [(root, root.name)]
            elif root.is_dir():
                candidates = list(_walk(root))
            else:
                self.stats.failed += 1
                self.stats.errors.append(f"{given}: no such file or folder")
                continue  # its documents stay indexed: a typo must not empty the index
            roots.append(str(root))
            for path, rel in candidates:
                if not is_supported(path):
                    self.stats.skipped += 1
                    continue
                source = _SourceFile(str(root), rel, path, str(given / rel) if root.is_dir() else str(given))
                refusal = _refusal(path, root, self.config.follow_symlinks_outside)
                if refusal is None:
                    files.append(source)
                else:
                    self._skip(source, refusal)
        return files, roots

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
            self._fail(source, f"cannot read file: {exc.strerror or exc}")
            return None
        digest = hashlib.sha256(METADATA_VERSION + data).hexdigest()
        entry = self.manifest.files.get(source.rel)
        if entry is not None and entry.hash == digest:
            self.stats.unchanged += 1
            if entry.root != source.root:  # the same file, now reached through another PATH
                entry.root = source.root
                self.manifest_dirty = True
            return None
        try:
            doc = load_document(source.path, source.rel)
        except LoadError as exc:
            self._fail(source, str(exc))
            return None
        chunks = chunk_document(doc, self.indexer.embedder, self.config.chunk_tokens, self.config.chunk_overlap_tokens)
        return _Pending(source, digest, chunks, entry is None)

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
        metas = [chunk_metadata(c, h, p.hash, p.file.root) for c, h, p in zip(chunks, hashes, owners, strict=True)]
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
        for p in pending:
            old = self.manifest.files.get(p.file.rel)
            new_ids = [c.id for c in p.chunks]
            if old is not None:
                surplus.extend(set(old.chunk_ids) - set(new_ids))
            own_hashes = hashes[offset : offset + len(p.chunks)]
            offset += len(p.chunks)
            self.manifest.files[p.file.rel] = FileEntry(
                p.file.root, p.hash, new_ids, self.config.embedding_model, own_hashes
            )
            if p.new:
                self.stats.added += 1
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

    def _remove_missing(self, roots: list[str], seen: set[str]) -> None:
        """Documents indexed from one of this run's PATHs that are no longer there."""
        gone = [p for root in roots for p in self.manifest.paths_under(root) if p not in seen]
        if not gone:
            return
        self._touch()
        ids = [cid for p in gone for cid in self.manifest.files[p].chunk_ids]
        for start in range(0, len(ids), PAGE):
            self.collection.delete(ids=ids[start : start + PAGE])
        for p in gone:
            del self.manifest.files[p]
        self.stats.removed += len(gone)
        self._save_manifest()

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
                        meta["root"], meta["doc_hash"], ids, self.config.embedding_model, text_hashes
                    )
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

    def _fail(self, source: _SourceFile, reason: str) -> None:
        self.stats.failed += 1
        self.stats.errors.append(f"{source.shown}: {reason}")

    def _skip(self, source: _SourceFile, reason: str) -> None:
        """Not read on purpose: counted as skipped (not a failure), and named in the summary."""
        self.stats.skipped += 1
        self.stats.errors.append(f"{source.shown}: skipped: {reason}")


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


def _walk(root: Path) -> Iterator[tuple[Path, str]]:
    """Files under `root` in a stable order, with their POSIX paths relative to it. Hidden files and
    folders (.git, .DS_Store) are not documents and are passed over without being counted."""
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        base = Path(folder)
        prefix = base.relative_to(root).as_posix()
        prefix = "" if prefix == "." else prefix + "/"
        for name in sorted(names):
            if not name.startswith("."):
                yield base / name, prefix + name

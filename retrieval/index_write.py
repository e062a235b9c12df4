"""The write step of an index run: the planned files hashed, loaded and chunked when they changed,
their chunks embedded and written to Chroma, then recorded in the manifest.

Embeddings are reused by the hash of the text that was embedded, so an unchanged file costs nothing,
a rename costs nothing, and an edit re-embeds only the chunks whose text changed. One batch is
embedded on a worker thread while the next is read and chunked. A file's manifest entry is written
only after its chunks are in Chroma (docs/indexing.md has the reasoning).
"""

from __future__ import annotations

import hashlib
import sys
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm import tqdm

from retrieval.chunking import chunk_document
from retrieval.errors import LoadError
from retrieval.index_run import IndexRun, SourceFile, now
from retrieval.lexical import lexical_text, tags_field
from retrieval.loaders import load_document, sidecar_bytes
from retrieval.manifest import DEFAULT_ROOT, FileEntry
from retrieval.models import Chunk
from retrieval.store import PAGE, check_dimension
from retrieval.tokenize import detect_language

# Part of every file's hash. Bumped when chunk metadata gains something (v2: the archived flag; v3: the
# manifest's title and date; v4: the chunk's language): the next run then re-reads every file once,
# reusing its embeddings, so an unchanged file gets it too.
METADATA_VERSION = b"qwenbot-metadata-v4\n"
# Embedding batches' worth of chunks gathered before they are embedded and written (512 chunks at the
# CPU's batch of 8): enough for sorting by length to cut padding and for each Chroma write to be large.
WINDOW_BATCHES = 64


def text_hash(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


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
        # What keyword search tokenizes the chunk in (retrieval/tokenize.py), told from the same words.
        "lang": detect_language(lexical_text(chunk.title, chunk.heading_path, chunk.text)),
    }
    return meta


@dataclass
class _Pending:
    file: SourceFile
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


def write_files(run: IndexRun, files: list[SourceFile]) -> None:
    """Indexes each of `files` that is new or changed, in batches; the rest are counted as unchanged."""
    writer = _Writer(run)
    pending: list[_Pending] = []
    pending_chunks = 0
    window = run.config.batch_size * WINDOW_BATCHES
    bar = tqdm(total=len(files), unit="file", file=sys.stderr, disable=not run.progress, desc="indexing")
    changed = Counter[bool]()  # by whether the file is new: written in batches, counted as read
    try:
        for source in files:
            item = writer.prepare(source)
            if item is not None:
                changed[item.new] += 1
                pending.append(item)
                pending_chunks += len(item.chunks)
                if pending_chunks >= window:
                    writer.submit(pending)
                    pending, pending_chunks = [], 0
            bar.update()
            bar.set_postfix_str(
                f"{changed[True]} new, {changed[False]} changed, {run.stats.unchanged} unchanged, "
                f"{run.stats.failed} failed",
                refresh=False,
            )
        writer.submit(pending)
        writer.write(writer.in_flight)
    finally:
        writer.pool.shutdown(wait=True, cancel_futures=True)
        bar.close()


class _Writer:
    """Reads files into batches of chunks, and writes each batch once its vectors are ready."""

    def __init__(self, run: IndexRun) -> None:
        self.run = run
        # One batch is embedded on this thread while the run goes on reading and chunking the next:
        # the model keeps the cores busy instead of waiting for the parser.
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="qwenbot-embed")
        self.in_flight: _Batch | None = None  # submitted for embedding, not yet written
        self.dimension_checked = False  # the first vectors of a run are checked against the index's size

    def prepare(self, source: SourceFile) -> _Pending | None:
        """Hashes the file; loads and chunks it only when it is new or changed."""
        run = self.run
        try:
            size = source.path.stat().st_size
            if size > run.config.max_file_bytes:  # a giant file would cost memory and time far beyond its use
                mb, limit = size / 2**20, run.config.max_file_bytes / 2**20
                run.skip(source, f"{mb:.1f} MB is over the {limit:.1f} MB limit (QWENBOT_MAX_FILE_MB)")
                return None
            data = source.path.read_bytes() + sidecar_bytes(source.path)  # its metadata is part of it
        except OSError as exc:
            run.fail(source, f"cannot read file: {exc.strerror or exc}", None)
            return None
        digest = hashlib.sha256(METADATA_VERSION + data).hexdigest()
        entry = run.manifest.files.get(source.key)
        if entry is not None and entry.root != source.root:
            owner = "the docs folder" if entry.root == DEFAULT_ROOT else f"root {entry.root!r}"
            run.fail(source, f"its path {source.key!r} is already a document of {owner}; skipped", digest)
            return None
        if entry is not None and entry.hash == digest:
            run.stats.unchanged += 1
            return None
        try:
            doc = load_document(source.path, source.key)
            chunks = chunk_document(doc, run.embedder(), run.config.chunk_tokens, run.config.chunk_overlap_tokens)
        except LoadError as exc:
            run.fail(source, str(exc), digest)
            return None
        except Exception as exc:  # noqa: BLE001 - whatever one file makes a parser raise fails that file alone
            run.fail(source, f"cannot read it ({type(exc).__name__}: {_first_line(exc)})", digest)
            return None
        return _Pending(source, digest, chunks, entry is None, doc.title, doc.updated)

    def submit(self, pending: list[_Pending]) -> None:
        """Starts embedding the pending files' chunks (reusing stored vectors where it can), then writes
        the previous batch while this one is being embedded."""
        batch = None
        if pending:
            chunks = [c for p in pending for c in p.chunks]
            hashes = [text_hash(c.embed_text) for c in chunks]
            vectors = self._reused_vectors(hashes)
            todo = list(dict.fromkeys(h for h in hashes if h not in vectors))  # identical texts embedded once
            texts = {h: c.embed_text for h, c in zip(hashes, chunks, strict=True)}
            encoded = self.pool.submit(self.run.embedder().encode, [texts[h] for h in todo]) if todo else None
            self.run.stats.chunks_embedded += len(todo)
            self.run.stats.chunks_reused += len(chunks) - len(todo)
            batch = _Batch(pending, chunks, hashes, vectors, todo, encoded)
        self.write(self.in_flight)
        self.in_flight = batch

    def write(self, batch: _Batch | None) -> None:
        """Writes a batch's chunks, deletes its files' surplus old chunks, then records it in the manifest."""
        if batch is None:
            return
        run = self.run
        pending, chunks, hashes, vectors = batch.pending, batch.chunks, batch.hashes, batch.vectors
        if batch.encoded is not None:
            encoded = batch.encoded.result()
            if not self.dimension_checked:
                check_dimension(run.config, run.collection, int(encoded.shape[1]))
                self.dimension_checked = True
            vectors.update(zip(batch.todo, encoded, strict=True))
        run.touch()
        owners = [p for p in pending for _ in p.chunks]
        roots = run.roots()
        metas = [
            chunk_metadata(c, h, p.hash, p.file.root, str(roots[p.file.root]))
            for c, h, p in zip(chunks, hashes, owners, strict=True)
        ]
        for start in range(0, len(chunks), PAGE):
            part = slice(start, start + PAGE)
            run.collection.upsert(
                ids=[c.id for c in chunks[part]],
                embeddings=np.stack([vectors[h] for h in hashes[part]]),
                documents=[c.text for c in chunks[part]],
                metadatas=metas[part],
            )
        surplus: list[str] = []
        offset = 0
        indexed_at = now()
        for p in pending:
            old = run.manifest.files.get(p.file.key)
            new_ids = [c.id for c in p.chunks]
            if old is not None:
                surplus.extend(set(old.chunk_ids) - set(new_ids))
            own_hashes = hashes[offset : offset + len(p.chunks)]
            offset += len(p.chunks)
            run.manifest.files[p.file.key] = FileEntry(
                p.file.root, p.hash, new_ids, run.config.embedding_model, own_hashes, p.title, p.updated, indexed_at
            )
            if p.new:
                run.stats.added += 1
                run.added.append((p.file.key, p.hash))
            else:
                run.stats.updated += 1
        if surplus:
            run.collection.delete(ids=surplus)
        run.known_hashes.update(hashes)
        run.save_manifest()

    def _reused_vectors(self, hashes: list[str]) -> dict[str, np.ndarray]:
        """Vectors already in the collection for these embedded-text hashes."""
        wanted = sorted({h for h in hashes if h in self.run.known_hashes})
        found: dict[str, np.ndarray] = {}
        for start in range(0, len(wanted), PAGE):
            got = self.run.collection.get(
                where={"text_hash": {"$in": wanted[start : start + PAGE]}}, include=["embeddings", "metadatas"]
            )
            for meta, vector in zip(got["metadatas"], got["embeddings"], strict=True):
                found[meta["text_hash"]] = np.asarray(vector, dtype=np.float32)
        return found


def _first_line(exc: BaseException, limit: int = 120) -> str:
    """An unexpected exception's message as it fits a one-line report."""
    text = (str(exc).splitlines() or [""])[0]
    return text if len(text) <= limit else text[: limit - 1] + "…"

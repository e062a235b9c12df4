"""Hybrid search: dense (Chroma) and BM25 candidates fused by weighted reciprocal rank fusion.

A Searcher is long-lived: it embeds queries with a model loaded once, holds the BM25 index in memory,
and checks the collection's change stamp at most every `lexical_refresh_seconds` to pick up what an
indexer (in this process, or anywhere with a Chroma server) has written.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from retrieval.config import IndexConfig
from retrieval.embeddings import Embedder, get_embedder
from retrieval.indexer import build_lexical
from retrieval.lexical import LexicalIndex, in_scope, parse_tags, saved_stamp
from retrieval.models import Hit, SearchFilter
from retrieval.store import (
    acquire_index_lock,
    check_model,
    current_metadata,
    open_client,
    open_collection,
    read_stamp,
)


@dataclass(frozen=True)
class IndexInfo:
    chunks: int
    documents: int
    last_indexed: str | None  # ISO timestamp of the last indexer run that changed something
    embedding_model: str | None


def fuse(rankings: list[tuple[float, list[str]]], rrf_k: int) -> dict[str, float]:
    """Weighted reciprocal rank fusion: sum over rankings of weight / (rrf_k + rank), rank from 1."""
    fused: dict[str, float] = {}
    for weight, ids in rankings:
        if weight <= 0:
            continue
        for rank, cid in enumerate(ids, start=1):
            fused[cid] = fused.get(cid, 0.0) + weight / (rrf_k + rank)
    return fused


class Searcher:
    """Searches one index. With a local index folder it holds the index lock while open (`close()`)."""

    def __init__(self, config: IndexConfig, embedder: Embedder | None = None) -> None:
        self.config = config
        self._embedder = embedder
        self._lock = acquire_index_lock(config)
        try:
            self._client = open_client(config)
            self._collection = open_collection(config, client=self._client)
            check_model(config, self._collection.metadata or {})
            self._lexical = self._load_lexical(read_stamp(self._collection.metadata or {}).value)
        except BaseException:
            self._lock.release()
            raise
        self._checked_at = time.monotonic()
        self._refreshing = threading.Lock()

    def close(self) -> None:
        self._lock.release()

    def __enter__(self) -> Searcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = get_embedder(
                self.config.embedding_model, self.config.embedding_device, self.config.embedding_batch_size
            )
        return self._embedder

    # --- search ----------------------------------------------------------------------------------

    def search(self, query: str, k: int = 6, filter: SearchFilter | None = None) -> list[Hit]:
        """The `k` best chunks for `query`, never outside `filter`'s scope. Empty index: []."""
        prepared = self._prepare(query, k, filter)
        if prepared is None:
            return []
        lexical, vector, where, mask = prepared
        n = self.config.candidates
        dense = self._dense(vector, n, where)
        sparse = lexical.search(query, n, mask)
        fused = fuse(
            [
                (self.config.dense_weight, [cid for cid, _ in dense]),
                (self.config.lexical_weight, [c for c, _ in sparse]),
            ],
            self.config.rrf_k,
        )
        top = sorted(fused, key=fused.__getitem__, reverse=True)[:k]
        return self._hits(top, fused, vector, dict(sparse), filter)

    def dense_search(self, query: str, k: int = 6, filter: SearchFilter | None = None) -> list[Hit]:
        """Dense retrieval alone (for comparison): scores are cosine similarities."""
        prepared = self._prepare(query, k, filter)
        if prepared is None:
            return []
        _, vector, where, _ = prepared
        dense = self._dense(vector, k, where)
        return self._hits([cid for cid, _ in dense], dict(dense), vector, {}, filter)

    def document_paths(self) -> list[str]:
        """Every indexed document's path."""
        return list(self._current_lexical().paths)

    def stats(self) -> IndexInfo:
        meta = current_metadata(self.config, self._client)
        stamp = read_stamp(meta)
        return IndexInfo(self._collection.count(), len(self._current_lexical().paths), stamp.indexed_at, stamp.model)

    # --- internals -------------------------------------------------------------------------------

    def _prepare(
        self, query: str, k: int, flt: SearchFilter | None
    ) -> tuple[LexicalIndex, np.ndarray, dict[str, Any] | None, np.ndarray | None] | None:
        lexical = self._current_lexical()
        if not query.strip() or k <= 0 or len(lexical) == 0:
            return None
        where = mask = None
        if flt is not None and not flt.is_empty:
            allowed, mask = lexical.scope(flt)
            if not allowed:
                return None
            if len(allowed) < len(lexical.paths):
                where = {"path": {"$in": allowed}}
            else:
                mask = None
        vector = self.embedder.encode([query])[0]
        return lexical, vector, where, mask

    def _dense(self, vector: np.ndarray, n: int, where: dict[str, Any] | None) -> list[tuple[str, float]]:
        result = self._collection.query(query_embeddings=[vector], n_results=n, where=where, include=["distances"])
        return [(cid, 1.0 - float(d)) for cid, d in zip(result["ids"][0], result["distances"][0], strict=True)]

    def _hits(
        self,
        ids: list[str],
        scores: dict[str, float],
        vector: np.ndarray,
        lexical_scores: dict[str, float],
        flt: SearchFilter | None,
    ) -> list[Hit]:
        if not ids:
            return []
        got = self._collection.get(ids=ids, include=["documents", "metadatas", "embeddings"])
        rows = {
            cid: (doc, meta, emb)
            for cid, doc, meta, emb in zip(
                got["ids"], got["documents"], got["metadatas"], got["embeddings"], strict=True
            )
        }
        hits = []
        for cid in ids:
            if cid not in rows:  # deleted since the BM25 snapshot was taken
                continue
            doc, meta, emb = rows[cid]
            tags = parse_tags(meta.get("tags"))
            if flt is not None and not flt.is_empty and not in_scope(meta["path"], tags, flt):
                continue  # belt and braces: a scoped search never returns anything outside its scope
            hits.append(
                Hit(
                    chunk_id=cid,
                    text=doc or "",
                    score=scores[cid],
                    title=meta.get("title", ""),
                    heading_path=meta.get("heading_path", ""),
                    path=meta["path"],
                    url=meta.get("url"),
                    updated=meta.get("updated"),
                    page=meta.get("page"),
                    tags=tags,
                    dense_score=float(np.dot(vector, np.asarray(emb, dtype=np.float32))),
                    lexical_score=lexical_scores.get(cid),
                )
            )
        return hits

    def _current_lexical(self) -> LexicalIndex:
        """The BM25 index, refreshed when the collection's stamp has moved (checked now and then)."""
        if time.monotonic() - self._checked_at >= self.config.lexical_refresh_seconds and self._refreshing.acquire(
            blocking=False
        ):
            # One thread refreshes; the others go on searching the previous snapshot meanwhile.
            try:
                self._checked_at = time.monotonic()
                stamp = read_stamp(current_metadata(self.config, self._client)).value
                if stamp != self._lexical.stamp:
                    self._lexical = self._load_lexical(stamp)
            finally:
                self._refreshing.release()
        return self._lexical

    def _load_lexical(self, stamp: str | None) -> LexicalIndex:
        """The saved BM25 index if it is the one for `stamp`, else rebuilt from the collection."""
        folder = self.config.index_dir / "bm25"
        if stamp is not None and saved_stamp(folder) == stamp:
            saved = LexicalIndex.load(folder)
            if saved is not None and saved.stamp == stamp:
                return saved
        lexical = build_lexical(self._collection, stamp)
        try:
            lexical.save(folder)  # the next process (or replica sharing this folder) starts faster
        except OSError:
            pass  # a read-only index folder only costs a rebuild next time
        return lexical

"""Hybrid search: dense (Chroma) and BM25 candidates fused by weighted reciprocal rank fusion.

A Searcher is long-lived: it embeds queries with a model loaded once, holds the BM25 index in memory,
and checks the collection's change stamp at most every `lexical_refresh_seconds` to pick up what an
indexer (in this process, or anywhere with a Chroma server) has written.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from retrieval.archive import candidate_pool, demote_archived
from retrieval.config import IndexConfig
from retrieval.embeddings import Embedder, embedder_for
from retrieval.errors import ModelMismatchError
from retrieval.fusion import fuse_top, top_k_indices
from retrieval.lexical import LexicalIndex, build_lexical, in_scope, parse_tags, saved_stamp
from retrieval.models import Hit, SearchFilter
from retrieval.rerank import RerankStage, make_reranker
from retrieval.store import (
    DIMENSION_KEY,
    acquire_index_lock,
    check_model,
    current_metadata,
    dimension_mismatch_message,
    iter_collection,
    open_client,
    open_collection,
    read_stamp,
)

# Scopes holding at least this share of the chunks are searched by over-fetching, narrower ones exactly
# over their own vectors (see Searcher._dense); the second kind keeps at most 10% of the vectors each.
_OVERFETCH_MIN_FRACTION = 0.1
_OVERFETCH_MAX = 1000
_SCOPE_CACHE = 16


@dataclass(frozen=True)
class IndexInfo:
    chunks: int
    documents: int
    last_indexed: str | None  # ISO timestamp of the last indexer run that changed something
    embedding_model: str | None


class SearchService(Protocol):
    """What the answer pipeline needs of a searcher: a Searcher, or one that searches through the
    running bot that holds the index (bot/control.py)."""

    config: IndexConfig

    def search(self, query: str, k: int = 6, filter: SearchFilter | None = None) -> list[Hit]: ...

    def term_idf(self, query: str) -> dict[str, float]: ...


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
        self._scoped: dict[SearchFilter, tuple[LexicalIndex, list[str], np.ndarray]] = {}
        self._scoped_lock = threading.Lock()
        reranker = make_reranker(config.reranker, config.rerank_timeout, config.embedding_device)
        self._rerank = RerankStage(reranker, config.rerank_candidates) if reranker else None

    def close(self) -> None:
        self._lock.release()

    def __enter__(self) -> Searcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = embedder_for(self.config)
        return self._embedder

    # --- search ----------------------------------------------------------------------------------

    def search(self, query: str, k: int = 6, filter: SearchFilter | None = None) -> list[Hit]:
        """The `k` best chunks for `query`, never outside `filter`'s scope, archived documents demoted
        (retrieval/archive.py). Empty index: []."""
        prepared = self._prepare(query, k, filter)
        if prepared is None:
            return []
        lexical, vector, flt, mask = prepared
        n = self.config.candidates
        dense = self._dense(vector, n, lexical, flt, mask)
        sparse = lexical.search(query, n, mask)
        top = fuse_top(
            [
                (self.config.dense_weight, [cid for cid, _ in dense]),
                (self.config.lexical_weight, [c for c, _ in sparse]),
            ],
            self.config.rrf_k,
            2 * n,  # all of them: archived ones are demoted before the top k are taken
        )
        top = candidate_pool(top, max(k, self._rerank.candidates) if self._rerank else k, query)
        hits = demote_archived(self._hits([cid for cid, _ in top], dict(top), vector, dict(sparse), filter), query)
        return (self._rerank.rerank(query, hits) if self._rerank else hits)[:k]

    def dense_search(self, query: str, k: int = 6, filter: SearchFilter | None = None) -> list[Hit]:
        """Dense retrieval alone (for comparison): scores are cosine similarities."""
        prepared = self._prepare(query, k, filter)
        if prepared is None:
            return []
        lexical, vector, flt, mask = prepared
        dense = self._dense(vector, k, lexical, flt, mask)
        return self._hits([cid for cid, _ in dense], dict(dense), vector, {}, filter)

    def term_idf(self, query: str) -> dict[str, float]:
        """The BM25 IDF of each distinct term of `query`, as keyword search tokenizes it."""
        lexical = self._current_lexical()
        return lexical.idf(list(dict.fromkeys(lexical.query_tokens(query))))

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
    ) -> tuple[LexicalIndex, np.ndarray, SearchFilter | None, np.ndarray | None] | None:
        """The BM25 snapshot, the query vector, and the filter with its chunk mask (None: everything
        is allowed). None when there can be no results."""
        lexical = self._current_lexical()
        if not query.strip() or k <= 0 or len(lexical) == 0:
            return None
        mask = None
        if flt is not None and not flt.is_empty:
            allowed, mask = lexical.scope(flt)
            if not allowed:
                return None
            if len(allowed) == len(lexical.paths):
                flt = mask = None  # the filter allows everything
        vector = self.embedder.encode_query(query)
        indexed = (self._collection.metadata or {}).get(DIMENSION_KEY)
        if indexed is not None and int(indexed) != len(vector):
            raise ModelMismatchError(dimension_mismatch_message(self.config, int(indexed), len(vector)))
        return lexical, vector, flt, mask

    def _dense(
        self, vector: np.ndarray, n: int, lexical: LexicalIndex, flt: SearchFilter | None, mask: np.ndarray | None
    ) -> list[tuple[str, float]]:
        """The `n` nearest chunks (cosine), all inside the filter's scope.

        Chroma's own metadata filter is avoided: at 100k chunks a `where path $in [...]` query took
        95-240 ms. A broad scope over-fetches from the unfiltered HNSW index and keeps what the mask
        allows; a narrow one is searched exactly over its own vectors, fetched once per index snapshot.
        """
        if flt is None or mask is None:
            return self._query(vector, n)
        fraction = float(mask.mean())
        if fraction >= _OVERFETCH_MIN_FRACTION:
            fetch = min(int(n / fraction * 2) + 1, _OVERFETCH_MAX)
            return [(cid, s) for cid, s in self._query(vector, fetch) if lexical.allows(cid, mask)][:n]
        ids, matrix = self._scope_vectors(lexical, flt, mask)
        if not ids:
            return []
        sims = matrix @ vector
        return [(ids[i], float(sims[i])) for i in top_k_indices(sims, n)]

    def _scope_vectors(
        self, lexical: LexicalIndex, flt: SearchFilter, mask: np.ndarray
    ) -> tuple[list[str], np.ndarray]:
        """The stored vectors of a narrow scope's chunks, cached for the BM25 snapshot they match."""
        with self._scoped_lock:  # search threads share the cache; one of them fetches a scope
            cached = self._scoped.get(flt)
            if cached is not None and cached[0] is lexical:
                return cached[1], cached[2]
            wanted = [lexical.ids[i] for i in np.flatnonzero(mask)]
            ids: list[str] = []
            rows: list[np.ndarray] = []
            for page in iter_collection(self._collection, ["embeddings"], wanted):
                ids.extend(page["ids"])
                rows.extend(np.asarray(e, dtype=np.float32) for e in page["embeddings"])
            matrix = np.stack(rows) if rows else np.zeros((0, 0), dtype=np.float32)
            if len(self._scoped) >= _SCOPE_CACHE:  # a bot serves a handful of channel scopes; bound it anyway
                self._scoped.pop(next(iter(self._scoped)))
            self._scoped[flt] = (lexical, ids, matrix)
            return ids, matrix

    def _query(self, vector: np.ndarray, n: int) -> list[tuple[str, float]]:
        result = self._collection.query(query_embeddings=[vector], n_results=n, include=["distances"])
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
                    archived=bool(meta.get("archived", False)),
                    owner=meta.get("owner") or None,
                    dense_score=float(np.dot(vector, np.asarray(emb, dtype=np.float32))),
                    lexical_score=lexical_scores.get(cid),
                )
            )
        return hits

    def refresh(self) -> None:
        """Picks up what an indexer in this process has just written, now rather than at the next check:
        a document indexed through the running bot is answerable as soon as the job returns."""
        with self._refreshing:
            self._check_stamp()

    def _current_lexical(self) -> LexicalIndex:
        """The BM25 index, refreshed when the collection's stamp has moved (checked now and then)."""
        if time.monotonic() - self._checked_at >= self.config.lexical_refresh_seconds and self._refreshing.acquire(
            blocking=False
        ):
            # One thread refreshes; the others go on searching the previous snapshot meanwhile.
            try:
                self._check_stamp()
            finally:
                self._refreshing.release()
        return self._lexical

    def _check_stamp(self) -> None:
        self._checked_at = time.monotonic()
        stamp = read_stamp(current_metadata(self.config, self._client)).value
        if stamp != self._lexical.stamp:
            self._lexical = self._load_lexical(stamp)

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

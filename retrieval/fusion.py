"""From scores to rankings: the top k of one score array, and weighted reciprocal rank fusion of
several ranked lists (dense and BM25 in a search, one list per query variant in the answer pipeline).
"""

from __future__ import annotations

import numpy as np


def top_k_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the `k` highest `scores`, best first.

    Linear in len(scores) plus k log k: the k best are picked by partitioning, then only they are
    sorted (a stable sort). When all of them are kept, equal scores stay in position order.
    """
    n = len(scores)
    if k <= 0 or n == 0:
        return np.zeros(0, dtype=np.intp)
    top = np.argsort(-scores, kind="stable")[:k] if n <= k else np.argpartition(-scores, k - 1)[:k]
    return top[np.argsort(-scores[top], kind="stable")]


def fuse(rankings: list[tuple[float, list[str]]], rrf_k: int) -> dict[str, float]:
    """Weighted reciprocal rank fusion: sum over rankings of weight / (rrf_k + rank), rank from 1.
    Rankings with a weight of zero or less are left out."""
    fused: dict[str, float] = {}
    for weight, ids in rankings:
        if weight <= 0:
            continue
        for rank, cid in enumerate(ids, start=1):
            fused[cid] = fused.get(cid, 0.0) + weight / (rrf_k + rank)
    return fused


def fuse_top(rankings: list[tuple[float, list[str]]], rrf_k: int, k: int) -> list[tuple[str, float]]:
    """The `k` best ids by fused score (see `fuse`), best first, with that score; ties keep the
    order in which the rankings first named them."""
    fused = fuse(rankings, rrf_k)
    return [(cid, fused[cid]) for cid in sorted(fused, key=fused.__getitem__, reverse=True)[: max(k, 0)]]

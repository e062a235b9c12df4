"""Indexing throughput against raw SentenceTransformer.encode, and the cost of an unchanged re-index.

    python bench/bench_index.py [--docs DIR] [--limit N]

1. raw: SentenceTransformer.encode on exactly the chunks the indexer produces (texts prepared
   beforehand, one call, same batch size) -> chunks/s;
2. pipeline: a full `Indexer.run` into an empty store (read, parse, chunk, embed, write to Chroma,
   manifest, BM25) -> chunks/s, as a ratio to (1). Target >= 0.85;
3. unchanged: the same run again, nothing changed -> seconds, as a fraction of (2). Target <= 0.02.
The model is loaded before anything is timed; both sides use the same loaded weights.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from retrieval.chunking import chunk_document  # noqa: E402
from retrieval.config import IndexConfig  # noqa: E402
from retrieval.embeddings import embedder_for, resolve_model_path  # noqa: E402
from retrieval.indexer import Indexer, format_summary  # noqa: E402
from retrieval.loaders import LoadError, is_supported, load_document  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=Path, default=REPO / "docs_corpus")
    parser.add_argument("--limit", type=int, default=0, help="index only the first N files (0: all)")
    parser.add_argument("--rounds", type=int, default=2, help="raw/pipeline pairs, alternated (machine noise)")
    args = parser.parse_args()

    from sentence_transformers import SentenceTransformer

    with tempfile.TemporaryDirectory(prefix="qwenbot-bench-") as tmp:
        docs = Path(tmp) / "docs"
        files = sorted(p for p in args.docs.rglob("*") if p.is_file() and is_supported(p))
        files = files[: args.limit] if args.limit else files
        for path in files:
            target = docs / path.relative_to(args.docs)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
        config = IndexConfig(index_dir=Path(tmp) / "index-0")
        embedder = embedder_for(config)
        raw_model = SentenceTransformer(resolve_model_path(config.embedding_model), device=config.embedding_device)

        texts: list[str] = []
        for path in sorted(p for p in docs.rglob("*") if p.is_file()):
            try:
                doc = load_document(path, path.relative_to(docs).as_posix())
            except LoadError:
                continue
            texts.extend(
                c.embed_text for c in chunk_document(doc, embedder, config.chunk_tokens, config.chunk_overlap_tokens)
            )
        raw_model.encode(texts[:64], batch_size=config.embedding_batch_size)  # warm-up
        embedder.encode(texts[:64])

        # Alternated rounds, each full index into a fresh store, so that a busy neighbour on a shared
        # machine slows both sides alike; the rates compare the summed times.
        raw_s = pipe_s = 0.0
        for round_ in range(args.rounds):
            started = time.perf_counter()
            raw_model.encode(texts, batch_size=config.embedding_batch_size, normalize_embeddings=True)
            raw_round = time.perf_counter() - started
            config = dataclasses.replace(config, index_dir=Path(tmp) / f"index-{round_}")
            full = Indexer(config, embedder).run([docs], progress=False)
            raw_s, pipe_s = raw_s + raw_round, pipe_s + full.seconds
            print(
                f"round {round_ + 1}: raw {len(texts) / raw_round:.1f} chunks/s, "
                f"pipeline {full.chunks_embedded / full.seconds:.1f} chunks/s",
                flush=True,
            )
        again = Indexer(config, embedder).run([docs], progress=False)

    raw_rate = len(texts) * args.rounds / raw_s
    pipe_rate = full.chunks_embedded * args.rounds / pipe_s
    print(f"corpus: {len(files)} files from {args.docs}, {len(texts)} chunks")
    print(f"full index:      {format_summary(full)}")
    print(f"unchanged index: {format_summary(again)}")
    print(f"raw SentenceTransformer.encode: {raw_rate:.1f} chunks/s ({raw_s / args.rounds:.2f} s per round)")
    print(f"pipeline throughput: {pipe_rate:.1f} chunks/s = {pipe_rate / raw_rate:.2f} x raw encode (target >= 0.85)")
    print(
        f"unchanged re-index: {again.seconds:.3f} s = {again.seconds / full.seconds:.4f} of the full index "
        "(target <= 0.02)"
    )


if __name__ == "__main__":
    main()

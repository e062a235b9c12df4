"""Indexing throughput against raw SentenceTransformer.encode, per embedding backend; int8 quality;
peak memory; and the cost of an unchanged re-index.

    python bench/bench_index.py [--docs DIR] [--limit N] [--rounds N] [--quality [SET ...]] [--store DIR]

1. raw: SentenceTransformer.encode (PyTorch, fp32) on exactly the chunks the indexer produces (texts
   prepared beforehand, one call, its own default batch size of 32) -> chunks/s; also at the bot's
   batch size (8 on the CPU), for comparison: small batches are faster on the CPU for PyTorch too;
2. pipeline: a full `Indexer.run` into an empty store (read, parse, chunk, embed, write to Chroma,
   manifest, BM25) -> chunks/s, as a ratio to (1), for each of: the defaults (ONNX Runtime, fp32;
   target >= 2.0), int8 (QWENBOT_EMBEDDING_QUANTIZE=int8; target >= 3.0) and the PyTorch backend
   (QWENBOT_EMBEDDING_BACKEND=torch: what indexing was before ONNX). The four are alternated round
   by round, so that a busy neighbour on a shared machine slows all of them alike;
3. vectors: the lowest cosine between ONNX fp32 (and int8) and PyTorch vectors of the same chunks;
4. unchanged: the default run again, nothing changed -> seconds, as a fraction of (2). Target <= 0.02;
5. peak memory (max RSS) of a whole `Indexer.run` of the corpus in a fresh process, per backend;
With --batch-sizes: only embedding, no indexing: the first N chunks of --docs (--limit files) embedded
by PyTorch, ONNX fp32 and int8 at batch sizes 1, 8, 32 and 64, in chunks/s and as a ratio to PyTorch at
sentence-transformers' default batch of 32 (the figures behind the default batch size).
6. with --quality [SET ...]: nDCG@10 of search over docs_corpus and SciFact (default: both) indexed
   with fp32 and with int8 (indexes kept under --store, so a second run reuses them; SciFact takes
   minutes per variant). --quality-only skips 1-5.
Models are loaded and exported before anything is timed.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
REPO = Path(__file__).resolve().parent.parent

from retrieval.chunking import chunk_document  # noqa: E402
from retrieval.config import IndexConfig  # noqa: E402
from retrieval.embeddings import Embedder, embedder_for, resolve_model_path  # noqa: E402
from retrieval.errors import LoadError  # noqa: E402
from retrieval.evaluation import evaluate, load_questions  # noqa: E402
from retrieval.indexer import Indexer, format_summary  # noqa: E402
from retrieval.loaders import is_supported, load_document  # noqa: E402
from retrieval.models import IndexStats  # noqa: E402
from retrieval.search import Searcher  # noqa: E402

SCIFACT = REPO.parent / "shared" / "eval" / "scifact"
# name -> the settings it differs by from the defaults
VARIANTS: dict[str, dict[str, str]] = {
    "onnx fp32 (default)": {},
    "onnx int8": {"embedding_quantize": "int8"},
    "torch (before)": {"embedding_backend": "torch"},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=Path, default=REPO / "docs_corpus")
    parser.add_argument("--limit", type=int, default=0, help="index only the first N files (0: all)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of raw + each pipeline, alternated")
    parser.add_argument(
        "--quality", nargs="*", choices=["docs_corpus", "scifact"], help="nDCG@10 of fp32 and int8 on these sets"
    )
    parser.add_argument("--quality-only", action="store_true", help="skip the throughput part")
    parser.add_argument("--store", type=Path, help="keep the --quality indexes here (default: a temp folder)")
    parser.add_argument("--batch-sizes", type=int, metavar="N", help="embedding speed of N chunks by batch size")
    parser.add_argument("--peak-memory-of", choices=list(VARIANTS), help=argparse.SUPPRESS)  # the child's job
    args = parser.parse_args()
    if args.peak_memory_of:
        return _peak_memory_child(args.docs, VARIANTS[args.peak_memory_of])
    if args.batch_sizes:
        return _batch_sizes(args)
    if not args.quality_only:
        _throughput(args)
    if args.quality is not None:
        _quality(args.quality or ["docs_corpus", "scifact"], args.store)


def _throughput(args: argparse.Namespace) -> None:
    from sentence_transformers import SentenceTransformer

    with tempfile.TemporaryDirectory(prefix="qwenbot-bench-") as tmp:
        docs = Path(tmp) / "docs"
        files = sorted(p for p in args.docs.rglob("*") if p.is_file() and is_supported(p))
        files = files[: args.limit] if args.limit else files
        for path in files:
            target = docs / path.relative_to(args.docs)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
        base = IndexConfig(index_dir=Path(tmp) / "index")
        configs = {name: dataclasses.replace(base, **change) for name, change in VARIANTS.items()}  # type: ignore[arg-type]
        embedders = {name: embedder_for(config) for name, config in configs.items()}
        raw_model = SentenceTransformer(resolve_model_path(base.embedding_model), device=base.embedding_device)

        default = embedders["onnx fp32 (default)"]
        texts = _chunk_texts(docs, sorted(p for p in docs.rglob("*") if p.is_file()), default, base)
        raw_model.encode(texts[:64])  # warm-up (and ONNX export)
        vectors = {name: embedder.encode(texts) for name, embedder in embedders.items()}

        raw_s = raw_ours_s = 0.0
        pipe_s = dict.fromkeys(VARIANTS, 0.0)
        full: dict[str, IndexStats] = {}
        for round_ in range(args.rounds):
            started = time.perf_counter()
            raw_model.encode(texts, normalize_embeddings=True)  # sentence-transformers' defaults
            raw_round = time.perf_counter() - started
            raw_s += raw_round
            started = time.perf_counter()
            raw_model.encode(texts, batch_size=base.batch_size, normalize_embeddings=True)
            raw_ours_s += time.perf_counter() - started
            line = [f"round {round_ + 1}: raw {len(texts) / raw_round:.1f}"]
            for i, (name, config) in enumerate(configs.items()):
                where = dataclasses.replace(config, index_dir=Path(tmp) / f"index-{round_}-{i}")
                full[name] = Indexer(where, embedders[name]).run([docs], progress=False)
                pipe_s[name] += full[name].seconds
                line.append(f"{name} {full[name].chunks_embedded / full[name].seconds:.1f}")
            print(", ".join(line) + " chunks/s", flush=True)
        last = dataclasses.replace(configs["onnx fp32 (default)"], index_dir=Path(tmp) / f"index-{args.rounds - 1}-0")
        again = Indexer(last, default).run([docs], progress=False)

    raw_rate = len(texts) * args.rounds / raw_s
    print(f"corpus: {len(files)} files from {args.docs}, {len(texts)} chunks")
    print(f"full index (default):  {format_summary(full['onnx fp32 (default)'])}")
    print(f"unchanged index:       {format_summary(again)}")
    print(
        f"raw SentenceTransformer.encode (torch fp32): {raw_rate:.1f} chunks/s ({raw_s / args.rounds:.2f} s per round)"
    )
    raw_ours = len(texts) * args.rounds / raw_ours_s
    print(f"the same at batch size {base.batch_size}: {raw_ours:.1f} chunks/s = {raw_ours / raw_rate:.2f} x")
    targets = {"onnx fp32 (default)": " (target >= 2.0)", "onnx int8": " (target >= 3.0)", "torch (before)": ""}
    for name in VARIANTS:
        rate = full[name].chunks_embedded * args.rounds / pipe_s[name]
        print(
            f"pipeline, {name:<20} {rate:6.1f} chunks/s = {rate / raw_rate:.2f} x raw encode{targets[name]}"
            f" ({rate / raw_ours:.2f} x raw encode at batch size {base.batch_size})"
        )
    reference = vectors["torch (before)"]
    for name in ("onnx fp32 (default)", "onnx int8"):
        print(f"lowest cosine to torch, {name}: {float((vectors[name] * reference).sum(axis=1).min()):.6f}")
    print(
        f"unchanged re-index: {again.seconds:.3f} s = {again.seconds / full['onnx fp32 (default)'].seconds:.4f} "
        "of the full index (target <= 0.02)"
    )
    for name in VARIANTS:
        child = [sys.executable, __file__, "--docs", str(args.docs), "--peak-memory-of", name]
        out = subprocess.run(child, check=True, capture_output=True, text=True).stdout
        print(f"peak memory, full index of {args.docs.name}, {name}: {out.strip()}")


def _chunk_texts(docs: Path, files: list[Path], embedder: Embedder, config: IndexConfig) -> list[str]:
    """The texts the indexer would embed for `files` (under `docs`), in order."""
    texts: list[str] = []
    for path in files:
        try:
            doc = load_document(path, path.relative_to(docs).as_posix())
        except LoadError:
            continue
        chunks = chunk_document(doc, embedder, config.chunk_tokens, config.chunk_overlap_tokens)
        texts.extend(c.embed_text for c in chunks)
    return texts


def _batch_sizes(args: argparse.Namespace) -> None:
    from sentence_transformers import SentenceTransformer

    base = IndexConfig(index_dir=Path(tempfile.gettempdir()) / "unused")
    onnx = {q: embedder_for(dataclasses.replace(base, embedding_quantize=q)) for q in ("none", "int8")}
    files = sorted(p for p in args.docs.rglob("*") if p.is_file() and is_supported(p))
    texts = _chunk_texts(args.docs, files[: args.limit] if args.limit else files, onnx["none"], base)
    texts = texts[: args.batch_sizes]
    raw = SentenceTransformer(resolve_model_path(base.embedding_model), device="cpu")
    runs: dict[str, Callable[[int], object]] = {
        "torch": lambda size: raw.encode(texts, batch_size=size, normalize_embeddings=True),
        "onnx fp32": lambda size: onnx["none"].encode(texts, size),
        "onnx int8": lambda size: onnx["int8"].encode(texts, size),
    }
    for run in runs.values():
        run(8)  # warm-up (and ONNX export)

    def rate(run: Callable[[int], object], size: int) -> float:
        best = min(_seconds(lambda: run(size)) for _ in range(args.rounds))  # the least disturbed round
        return len(texts) / best

    tokens = sum(onnx["none"].count_tokens(t) for t in texts) / len(texts)
    print(f"{len(texts)} chunks of {args.docs} ({tokens:.0f} tokens on average), chunks/s, best of {args.rounds}")
    rates = {name: {size: rate(run, size) for size in (1, 8, 32, 64)} for name, run in runs.items()}
    reference = rates["torch"][32]
    for name, by_size in rates.items():
        print(f"{name:<10} " + ", ".join(f"{size}: {r:.1f} ({r / reference:.2f}x)" for size, r in by_size.items()))


def _seconds(job: Callable[[], object]) -> float:
    started = time.perf_counter()
    job()
    return time.perf_counter() - started


def _peak_memory_child(docs: Path, change: dict[str, str]) -> None:
    with tempfile.TemporaryDirectory(prefix="qwenbot-bench-") as tmp:
        config = dataclasses.replace(IndexConfig(index_dir=Path(tmp)), **change)  # type: ignore[arg-type]
        Indexer(config).run([docs], progress=False)
    # VmHWM, not getrusage's ru_maxrss: Linux carries that over from the parent across fork and exec.
    status = Path("/proc/self/status").read_text()
    peak_kib = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
    print(f"{peak_kib / 1024:.0f} MiB")


def _quality(names: list[str], store: Path | None) -> None:
    sets = {"docs_corpus": REPO / "docs_corpus", "scifact": SCIFACT}
    with tempfile.TemporaryDirectory(prefix="qwenbot-bench-") as tmp:
        root = store or Path(tmp)
        for set_name in names:
            folder = sets[set_name]
            questions = load_questions(folder / "questions.jsonl")
            docs = folder / "docs" if (folder / "docs").is_dir() else folder
            scores = {}
            for name in ("onnx fp32 (default)", "onnx int8"):
                change = VARIANTS[name]
                config = dataclasses.replace(
                    IndexConfig(index_dir=root / f"{set_name}-{name.split()[1]}"),
                    **change,  # type: ignore[arg-type]
                )
                Indexer(config).run([docs], progress=False)
                with Searcher(config) as searcher:
                    scores[name] = evaluate(searcher, questions, set(searcher.document_paths())).ndcg_at_10
            fp32, int8 = scores["onnx fp32 (default)"], scores["onnx int8"]
            print(f"nDCG@10 on {set_name}: fp32 {fp32:.4f}, int8 {int8:.4f} ({int8 - fp32:+.4f})", flush=True)


if __name__ == "__main__":
    main()

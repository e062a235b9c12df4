"""Retrieval quality of the project's search against a plain hybrid baseline, side by side.

    python bench/bench_retrieval.py --cache /tmp/retr [--sets docs docs-near scifact scifact-near]
                                    [--set candidates=100 ...]

The baseline is deliberately plain: each document's text cut into 1,000-character windows with 200
characters of overlap, bm25s (its own tokenizer, English stop words, no stemming), all-MiniLM-L6-v2
through the project's embedder, reciprocal rank fusion (k=60) over the top 100 chunks of each side, and
a document ranked by its best chunk. Document text comes from the project's loaders (title, then the
blocks), so both sides read the same words from HTML and PDF files.

The project's side is the bot's own path: an index built by `retrieval.indexer.Indexer`, searched by
`retrieval.search.Searcher`, scored by `retrieval.evaluation.evaluate`. `--set name=value` overrides an
IndexConfig field (to try a change before making it the default).

Sets: docs_corpus, SciFact (../shared/eval/scifact) and their near-domain variants (the sources of
every 8th / 4th answerable question removed, see make_near_domain.py; their answerable questions are
scored); `scifact-small` (every judged abstract and a fifth of the others) is a quick proxy for
SciFact, `scifact-small-near` its near-domain variant; `small` is tests/fixtures/small_docs (a dozen
documents in every format, as a team's first folder), `small-near` its near-domain variant.
Embeddings are cached by text under --cache, shared by every index and configuration, so a rerun or a
new chunking configuration embeds only texts it has not seen.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
ROOT = Path(__file__).resolve().parent.parent

import bm25s  # noqa: E402
import numpy as np  # noqa: E402
from make_near_domain import copy_docs, near_domain  # noqa: E402

from retrieval.config import IndexConfig  # noqa: E402
from retrieval.embeddings import Embedder, get_embedder  # noqa: E402
from retrieval.errors import LoadError  # noqa: E402
from retrieval.evaluation import (  # noqa: E402
    RANK_K,
    RECALL_K,
    Question,
    evaluate,
    load_questions,
    ndcg_at_k,
    recall_at_k,
)
from retrieval.fusion import fuse, top_k_indices  # noqa: E402
from retrieval.indexer import Indexer  # noqa: E402
from retrieval.loaders import is_supported, load_document  # noqa: E402
from retrieval.search import Searcher  # noqa: E402

SCIFACT = ROOT.parent / "shared" / "eval" / "scifact"
SMALL_DOCS = ROOT / "tests" / "fixtures" / "small_docs"  # a dozen documents, as a team's first folder
# near-domain variants: (the set, drop the sources of every n-th answerable question)
NEAR_DOMAIN = {
    "docs-near": ("docs", 8),
    "scifact-near": ("scifact", 4),
    "scifact-small-near": ("scifact-small", 4),
    "small-near": ("small", 8),
}
BASE_CHARS = 1000
BASE_OVERLAP = 200
BASE_DEPTH = 100
BASE_RRF_K = 60
# What the project's index depends on besides the documents: a change to any of these files (globs under
# retrieval/) means a fresh index (the indexer itself only notices changed documents).
INDEX_SOURCES = ("chunking.py", "loaders.py", "formats/*.py", "lexical.py", "tokenize.py", "index*.py", "embeddings.py")


@dataclass(frozen=True)
class EvalSet:
    name: str
    docs: Path
    questions: Path


@dataclass(frozen=True)
class Scores:
    ndcg: float
    recall: float
    answerable: int


class CachingEmbedder(Embedder):
    """The project's embedder with its vectors cached on disk by text: every index and configuration
    of one run (and of later runs) embeds a given text once."""

    def __init__(self, inner: Embedder, folder: Path) -> None:
        self.__dict__.update(inner.__dict__)
        self._inner = inner
        self._file = folder / f"vectors-{hashlib.sha1(inner.name.encode()).hexdigest()[:8]}.npz"
        self._cache: dict[str, np.ndarray] = {}
        self._dirty = False
        if self._file.exists():
            with np.load(self._file) as saved:
                self._cache = dict(zip(saved["keys"].tolist(), saved["vectors"], strict=True))

    def embed(self, texts: list[str], batch_size: int | None = None) -> np.ndarray:
        keys = [hashlib.sha1(t.encode("utf-8")).hexdigest() for t in texts]
        todo = list(dict.fromkeys(k for k in keys if k not in self._cache))
        if todo:
            by_key = dict(zip(keys, texts, strict=True))
            vectors = self._inner.embed([by_key[k] for k in todo], batch_size)
            self._cache.update(zip(todo, vectors, strict=True))
            self._dirty = True
        if not texts:
            return self._inner.embed([])
        return np.stack([self._cache[k] for k in keys])

    def save(self) -> None:
        if self._dirty:
            keys = list(self._cache)
            tmp = self._file.with_suffix(".tmp.npz")
            np.savez(tmp, keys=np.array(keys), vectors=np.stack([self._cache[k] for k in keys]))
            os.replace(tmp, self._file)
            self._dirty = False


# --- the sets ---------------------------------------------------------------------------------


def eval_sets(cache: Path, wanted: list[str]) -> list[EvalSet]:
    base = {
        "docs": EvalSet("docs_corpus", ROOT / "docs_corpus", ROOT / "docs_corpus" / "questions.jsonl"),
        "scifact": EvalSet("scifact", SCIFACT / "docs", SCIFACT / "questions.jsonl"),
        "small": EvalSet("small_docs", SMALL_DOCS, SMALL_DOCS / "questions.jsonl"),
    }
    out = []
    for name in wanted:
        if name in base:
            out.append(base[name])
            continue
        folder = cache / "sets" / name
        if name == "scifact-small":
            out.append(small_scifact(base["scifact"], folder))
            continue
        source, every = NEAR_DOMAIN[name]
        src = small_scifact(base["scifact"], cache / "sets" / source) if source == "scifact-small" else base[source]
        if not (folder / "questions.jsonl").exists():
            questions = [json.loads(line) for line in src.questions.read_text(encoding="utf-8").splitlines() if line]
            rewritten, dropped = near_domain(questions, every, 0)
            shutil.rmtree(folder, ignore_errors=True)
            copy_docs(src.docs, folder / "docs", dropped)
            with (folder / "questions.jsonl").open("w", encoding="utf-8") as f:
                f.writelines(json.dumps(q, ensure_ascii=False) + "\n" for q in rewritten)
        out.append(EvalSet(f"{src.name} near-domain", folder / "docs", folder / "questions.jsonl"))
    return out


def small_scifact(full: EvalSet, folder: Path) -> EvalSet:
    """SciFact with every judged abstract and every 5th other one (about 1,300 of 5,183): the same
    questions over a quarter of the corpus, for a quick first look at a change."""
    if not (folder / "questions.jsonl").exists():
        judged = {s for q in load_questions(full.questions) for s in q.sources}
        others = sorted(p.name for p in full.docs.iterdir() if p.name not in judged)
        keep = judged | set(others[::5])
        shutil.rmtree(folder, ignore_errors=True)
        copy_docs(full.docs, folder / "docs", {p.name for p in full.docs.iterdir()} - keep)
        shutil.copy(full.questions, folder / "questions.jsonl")
    return EvalSet("scifact small", folder / "docs", folder / "questions.jsonl")


def documents(docs: Path) -> dict[str, str]:
    """Each supported document's text (title, then its blocks), by path relative to `docs`."""
    texts: dict[str, str] = {}
    for path in sorted(p for p in docs.rglob("*") if p.is_file()):
        rel = path.relative_to(docs).as_posix()
        if any(part.startswith(".") for part in rel.split("/")) or not is_supported(path):
            continue
        try:
            doc = load_document(path, rel)
        except LoadError:
            continue
        texts[rel] = "\n\n".join([doc.title, *(b.text for b in doc.blocks)])
    return texts


# --- the baseline -------------------------------------------------------------------------------


def baseline(embedder: CachingEmbedder, docs: Path, questions: list[Question]) -> Scores:
    paths: list[str] = []
    chunks: list[str] = []
    for path, text in documents(docs).items():
        step = BASE_CHARS - BASE_OVERLAP
        for start in range(0, max(len(text) - BASE_OVERLAP, 1), step):
            paths.append(path)
            chunks.append(text[start : start + BASE_CHARS])
    matrix = embedder.encode(chunks)
    bm25 = bm25s.BM25()
    bm25.index(bm25s.tokenize(chunks, stopwords="en", show_progress=False), show_progress=False)
    answerable = [q for q in questions if q.sources]
    vectors = embedder.encode([q.question for q in answerable])
    depth = min(BASE_DEPTH, len(chunks))
    ndcgs, recalls = [], []
    for question, vector in zip(answerable, vectors, strict=True):
        dense = [int(i) for i in top_k_indices(matrix @ vector, depth)]
        tokens = bm25s.tokenize([question.question], stopwords="en", show_progress=False)
        sparse: list[int] = []
        if tokens.ids[0]:
            found, scores = bm25.retrieve(tokens, k=depth, show_progress=False)
            sparse = [int(i) for i, s in zip(found[0], scores[0], strict=True) if s > 0]
        fused = fuse([(1.0, [str(i) for i in dense]), (1.0, [str(i) for i in sparse])], BASE_RRF_K)
        ranked = list(dict.fromkeys(paths[int(c)] for c in sorted(fused, key=fused.__getitem__, reverse=True)))
        relevant = set(question.sources)
        ndcgs.append(ndcg_at_k(ranked, relevant, RANK_K))
        recalls.append(recall_at_k(ranked, relevant, RECALL_K))
    return Scores(float(np.mean(ndcgs)), float(np.mean(recalls)), len(answerable))


# --- the project ----------------------------------------------------------------------------------


def project(embedder: CachingEmbedder, cache: Path, eval_set: EvalSet, config: IndexConfig) -> Scores:
    config = build_index(embedder, cache, eval_set, config)
    with Searcher(config, embedder) as searcher:
        report = evaluate(searcher, load_questions(eval_set.questions), set(searcher.document_paths()))
    return Scores(report.ndcg_at_10, report.recall_at_5, report.answerable)


def build_index(embedder: CachingEmbedder, cache: Path, eval_set: EvalSet, config: IndexConfig) -> IndexConfig:
    """The set's index under CACHE/indexes, built by the project's indexer unless one was built for this
    set with the same configuration and indexing code; the config to open it with."""
    sources = b"".join(p.read_bytes() for name in INDEX_SOURCES for p in sorted((ROOT / "retrieval").glob(name)))
    key = hashlib.sha1(
        repr((eval_set.name, config.chunk_tokens, config.chunk_overlap_tokens, config.embedding_model)).encode()
        + sources
    ).hexdigest()[:12]
    config = dataclasses.replace(config, index_dir=cache / "indexes" / f"{eval_set.name.replace(' ', '-')}-{key}")
    if not (config.index_dir / "done").exists():
        shutil.rmtree(config.index_dir, ignore_errors=True)
        stats = Indexer(config, embedder).run([eval_set.docs], progress=False)
        if stats.failed:
            print(f"  {eval_set.name}: {stats.failed} files failed to index: {stats.errors[:3]}", file=sys.stderr)
        (config.index_dir / "done").touch()
    return config


def overrides(pairs: list[str]) -> dict[str, Any]:
    fields = {f.name: f.type for f in dataclasses.fields(IndexConfig)}
    out: dict[str, Any] = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        if name not in fields:
            raise SystemExit(f"--set {pair}: IndexConfig has no field {name!r}")
        out[name] = value if fields[name] in ("str", "str | None") else json.loads(value)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/qwenbot-bench-retrieval"))
    parser.add_argument(
        "--sets", nargs="+", default=["docs", "docs-near", "scifact", "scifact-near"], help="which sets to run"
    )
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE")
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    config = dataclasses.replace(IndexConfig(index_dir=args.cache), collection="bench", **overrides(args.overrides))
    embedder = CachingEmbedder(get_embedder(config.embedding_model), args.cache)
    header = f"{'set':<24} {'questions':>9}  {'baseline nDCG@10':>16} {'R@5':>6}  {'project nDCG@10':>15} {'R@5':>6}"
    print(header)
    print("-" * len(header), flush=True)
    for eval_set in eval_sets(args.cache, args.sets):
        started = time.perf_counter()
        questions = load_questions(eval_set.questions)
        base = baseline(embedder, eval_set.docs, questions)
        embedder.save()
        mine = project(embedder, args.cache, eval_set, config)
        embedder.save()
        print(
            f"{eval_set.name:<24} {base.answerable:>9}  {base.ndcg:>16.4f} {base.recall:>6.4f}  "
            f"{mine.ndcg:>15.4f} {mine.recall:>6.4f}   ({time.perf_counter() - started:.0f} s)",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

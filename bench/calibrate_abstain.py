"""Calibrate QWENBOT_ABSTAIN_THRESHOLD: how often the bot would abstain, per threshold.

The pipeline abstains (asks no model) when the best dense cosine among the retrieved chunks is below
the threshold. For each threshold this prints the share of unanswerable questions (`"sources": []`)
that abstain (higher is better) and the share of answerable ones that wrongly abstain (lower is better).

    python bench/calibrate_abstain.py [docs_corpus/questions.jsonl] [--docs docs_corpus] [--k 6]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

from retrieval.config import IndexConfig  # noqa: E402
from retrieval.indexer import Indexer  # noqa: E402
from retrieval.search import Searcher  # noqa: E402


def best_dense_scores(questions: list[dict], docs: Path, k: int) -> list[tuple[bool, float]]:
    """(answerable, best dense cosine of the top-k hybrid hits) per question."""
    with tempfile.TemporaryDirectory() as tmp:
        config = IndexConfig(index_dir=Path(tmp))
        Indexer(config).run([docs], progress=False)
        with Searcher(config) as searcher:
            out = []
            for q in questions:
                hits = searcher.search(q["question"], k=k)
                best = max((h.dense_score for h in hits if h.dense_score is not None), default=-1.0)
                out.append((bool(q["sources"]), best))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("questions", type=Path, nargs="?", default=Path("docs_corpus/questions.jsonl"))
    parser.add_argument("--docs", type=Path, default=Path("docs_corpus"))
    parser.add_argument("--k", type=int, default=6, help="hits retrieved per question (QWENBOT_TOP_K)")
    args = parser.parse_args()
    questions = [json.loads(line) for line in args.questions.read_text().splitlines() if line.strip()]
    scores = best_dense_scores(questions, args.docs, args.k)
    unanswerable = sorted(s for answerable, s in scores if not answerable)
    answerable = sorted(s for answerable, s in scores if answerable)
    print(f"{len(answerable)} answerable, {len(unanswerable)} unanswerable questions")
    print("best cosine, unanswerable:", " ".join(f"{s:.2f}" for s in unanswerable))
    print("best cosine, answerable (lowest 10):", " ".join(f"{s:.2f}" for s in answerable[:10]))
    print(f"{'threshold':>9}  {'unanswerable abstained':>22}  {'answerable wrongly abstained':>28}")
    for t in [x / 100 for x in range(25, 46)]:
        hit = sum(s < t for s in unanswerable)
        miss = sum(s < t for s in answerable)
        print(
            f"{t:>9.2f}  {hit:>3}/{len(unanswerable):<3} {hit / len(unanswerable):>7.0%}       "
            f"{miss:>3}/{len(answerable):<3} {miss / len(answerable):>7.0%}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

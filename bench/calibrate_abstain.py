"""Calibrate the "not in the docs" rule (bot/answer/abstain.py) on several sets side by side.

Each set is a folder as bench/make_near_domain.py writes it: `questions.jsonl` (near-domain questions
carry `"near_domain": true`; `"sources": []` is unanswerable) and `docs/`. Every question goes through
the bot's own `AnswerPipeline.retrieve` (no model), with the settings of the environment / --env-file.
For each set this prints the share of near-domain and of other unanswerable questions the rule holds
back (higher is better) and the share of answerable ones it wrongly holds back (lower is better): for
the rule as configured, for the old rule (best dense cosine < 0.32) as "before", and for a sweep of
QWENBOT_ABSTAIN_MIN_COVERAGE, so that a value is chosen on one set and checked on the others. Last, how
well each retrieval signal alone tells answerable from near-domain questions (AUC: the chance that an
answerable question scores higher than a near-domain one; 0.5 is a coin, 1.0 separates them).

    python bench/calibrate_abstain.py --set docs=/tmp/abst/nd-docs --set scifact=/tmp/abst/nd-scifact \\
        --cache /tmp/abst/stores [--env-file .env]

Indexes are built once under --cache/<name> (the same layout as `qwenbot eval --store`) and reused.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

from bot.answer.abstain import AbstainRule, Decision, agreement, decide, term_coverage  # noqa: E402
from bot.answer.pipeline import AnswerPipeline  # noqa: E402
from bot.commands.eval import EVAL_COLLECTION  # noqa: E402
from bot.settings import Settings, load_settings  # noqa: E402
from retrieval.indexer import Indexer  # noqa: E402
from retrieval.models import Hit  # noqa: E402
from retrieval.search import Searcher  # noqa: E402

OLD_COSINE_THRESHOLD = 0.32  # the rule this one replaced: best dense cosine below it
SWEEP = [0.2, 0.25, 0.28, 0.3, 0.32, 0.35, 0.4]


@dataclasses.dataclass
class Case:
    kind: str  # "answerable", "near" (near-domain unanswerable), "other" (unanswerable from the start)
    idf: dict[str, float]
    hits: list[Hit]
    decision: Decision  # as the pipeline decided, with the configured rule
    ranking: list[Hit]  # the first 10 documents' passages, for the signals table


def collect(settings: Settings, folder: Path, store: Path) -> list[Case]:
    config = dataclasses.replace(settings.index_config(index_dir=store), chroma_host=None, collection=EVAL_COLLECTION)
    Indexer(config).run([folder / "docs"], progress=False)
    lines = [json.loads(line) for line in (folder / "questions.jsonl").read_text(encoding="utf-8").splitlines() if line]
    cases = []
    with Searcher(config) as searcher:
        pipeline = AnswerPipeline(settings.answer_config(), searcher, None)
        for q in lines:
            found = pipeline.retrieve(q["question"], [], depth=10)
            kind = "answerable" if q["sources"] else "near" if q.get("near_domain") else "other"
            idf = searcher.term_idf(" ".join(found.queries))
            cases.append(Case(kind, idf, found.hits, found.decision, found.ranking))
    return cases


def held(cases: list[Case], holds: Callable[[Case], bool], kind: str) -> str:
    group = [c for c in cases if c.kind == kind]
    if not group:
        return f"{'-':>12}"
    n = sum(holds(c) for c in group)
    return f"{n:>3}/{len(group):<3} {n / len(group):>5.1%}"


def old_rule(case: Case) -> bool:
    best = max((h.dense_score for h in case.hits if h.dense_score is not None), default=None)
    return best is None or best < OLD_COSINE_THRESHOLD


def _best_per_document(hits: list[Hit], score: Callable[[Hit], float | None]) -> list[float]:
    best: dict[str, float] = {}
    for h in hits:
        value = score(h)
        if value is not None:
            best[h.path] = max(best.get(h.path, value), value)
    return sorted(best.values(), reverse=True)


def _margin(scores: list[float], ratio: bool) -> float:
    if len(scores) < 2:
        return 1.0
    return scores[0] / scores[1] if ratio and scores[1] > 0 else scores[0] - scores[1]


# Signals tried for the decision: what the rule reads, and others that looked promising.
SIGNALS: dict[str, Callable[[Case], float]] = {
    "coverage of the top passage": lambda c: term_coverage(c.idf, c.hits[0]) if c.hits else 0.0,
    "best coverage of the top k passages": lambda c: max((term_coverage(c.idf, h) for h in c.hits), default=0.0),
    "best dense cosine": lambda c: max((h.dense_score or 0.0 for h in c.hits), default=0.0),
    "dense: best minus 2nd document": lambda c: _margin(_best_per_document(c.ranking, lambda h: h.dense_score), False),
    "keyword: best / 2nd document": lambda c: _margin(_best_per_document(c.ranking, lambda h: h.lexical_score), True),
    "sides agree on the top document": lambda c: agreement(c.hits)[0] if c.hits else 0.0,
    "top document in both sides' first two": lambda c: agreement(c.hits)[1] if c.hits else 0.0,
}


def auc(cases: list[Case], signal: Callable[[Case], float]) -> float:
    """The chance that an answerable question scores higher than a near-domain one (ties count half)."""
    yes = [signal(c) for c in cases if c.kind == "answerable"]
    no = [signal(c) for c in cases if c.kind == "near"]
    if not yes or not no:
        return float("nan")
    wins = sum((a > b) + 0.5 * (a == b) for a in yes for b in no)
    return wins / (len(yes) * len(no))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", action="append", required=True, metavar="NAME=FOLDER", help="a near-domain set")
    parser.add_argument("--cache", type=Path, required=True, help="indexes are built once under CACHE/NAME")
    parser.add_argument("--env-file", default=None, help="settings file (default: the environment only)")
    args = parser.parse_args()
    settings = load_settings(args.env_file)
    sets = {}
    for spec in args.set:
        name, _, folder = spec.partition("=")
        sets[name] = collect(settings, Path(folder), args.cache / name)

    def rule(min_coverage: float) -> Callable[[Case], bool]:
        r = AbstainRule(min_coverage)  # no reranker in these runs
        return lambda c: not decide(c.idf, c.hits, r).answerable

    rules: list[tuple[str, Callable[[Case], bool]]] = [
        (f"before: cosine < {OLD_COSINE_THRESHOLD}", old_rule),
        (f"after: configured ({settings.abstain_min_coverage:g})", lambda c: not c.decision.answerable),
        *[(f"  min_coverage {m:g}", rule(m)) for m in SWEEP],
    ]
    header = f"{'rule':<30}" + "".join(
        f" | {name + ': near caught':>20} {'other caught':>12} {'answerable held':>15}" for name in sets
    )
    print(header)
    print("-" * len(header))
    for label, holds in rules:
        row = f"{label:<30}"
        for cases in sets.values():
            row += f" | {held(cases, holds, 'near'):>20} {held(cases, holds, 'other'):>12} "
            row += f"{held(cases, holds, 'answerable'):>15}"
        print(row)
    print()
    print(f"{'signal (AUC, answerable vs near-domain)':<42}" + "".join(f" | {name:>8}" for name in sets))
    for label, signal in SIGNALS.items():
        print(f"{label:<42}" + "".join(f" | {auc(cases, signal):>8.3f}" for cases in sets.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

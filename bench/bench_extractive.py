"""Answers without a model (extractive mode) on several sets side by side: the rule before and after.

    python bench/bench_extractive.py --cache /tmp/extr [--sets small small-near docs docs-near \\
        scifact-small scifact-small-near] [--show]

Every question goes through the bot's own `AnswerPipeline.retrieve`, then:
- before: the rule extractive mode had until this bench was written, re-implemented here: quote when
  the top document is among both search sides' first two and the top passage holds twice
  QWENBOT_ABSTAIN_MIN_COVERAGE of the question's terms; then quote the first three passages, whatever
  they are;
- after: the answer `AnswerPipeline.run` gives today with no model configured.

Per set and rule: answerable questions answered (a quoted passage comes from one of the question's
source documents), answerable ones refused ("not in the docs"), unanswerable ones caught ("not in the
docs": near-domain ones, whose source a near-domain set removed, and the others), and off-topic
passages quoted (from no source document of the question; every passage quoted for an unanswerable
question is off-topic) out of all passages quoted. The sets are bench_retrieval.py's
(indexes cached under --cache/indexes, embeddings under --cache); settings come from the environment.
--show lists, per set, the answerable questions the current rule refuses and the off-topic quotes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench_retrieval import CachingEmbedder, EvalSet, build_index, eval_sets

from bot.answer.abstain import STRICT_COVERAGE_FACTOR, agreement, term_coverage
from bot.answer.pipeline import AnswerPipeline, Retrieved
from bot.answer.records import Done
from bot.settings import Settings, load_settings
from retrieval.config import IndexConfig
from retrieval.embeddings import get_embedder
from retrieval.evaluation import Question, load_questions
from retrieval.search import Searcher

OLD_PASSAGES = 3
# The attribution line under each quoted passage: "— _Title › Section_ [n]".
_ATTRIBUTION = re.compile(r"^— _.*_ \[(\d+)\]$", re.MULTILINE)


@dataclass(frozen=True)
class Outcome:
    question: Question
    near: bool  # near-domain: its source documents were removed from the set
    quoted: list[str]  # the document of each quoted passage, in order; [] = "not in the docs"


Rule = Callable[[AnswerPipeline, Searcher, Question, Retrieved], list[str]]


def before(pipeline: AnswerPipeline, searcher: Searcher, question: Question, found: Retrieved) -> list[str]:
    if not found.answerable:
        return []
    coverage = term_coverage(searcher.term_idf(question.question), found.hits[0])
    if not agreement(found.hits)[1] or coverage < STRICT_COVERAGE_FACTOR * pipeline.config.abstain_min_coverage:
        return []
    return [h.path for h in found.hits[:OLD_PASSAGES]]


def after(pipeline: AnswerPipeline, searcher: Searcher, question: Question, found: Retrieved) -> list[str]:
    done = [e for e in pipeline.run(question.question, [], found=found) if isinstance(e, Done)]
    answer = done[-1].answer
    if answer.mode != "extractive":
        return []
    path = {s.n: s.path for s in answer.sources}
    return [path[int(n)] for n in _ATTRIBUTION.findall(answer.text)]


RULES: dict[str, Rule] = {"before": before, "after": after}


def run_set(settings: Settings, config: IndexConfig, embedder: CachingEmbedder, eval_set: EvalSet) -> dict:
    lines = [json.loads(line) for line in eval_set.questions.read_text(encoding="utf-8").splitlines() if line]
    near = {line["id"] for line in lines if line.get("near_domain")}
    out: dict[str, list[Outcome]] = {name: [] for name in RULES}
    with Searcher(config, embedder) as searcher:
        pipeline = AnswerPipeline(settings.answer_config(), searcher, None)
        for question in load_questions(eval_set.questions):
            found = pipeline.retrieve(question.question, [])
            for name, rule in RULES.items():
                quoted = rule(pipeline, searcher, question, found)
                out[name].append(Outcome(question, question.id in near, quoted))
    return out


def figures(outcomes: list[Outcome]) -> list[str]:
    answerable = [o for o in outcomes if o.question.sources]
    answered = sum(bool(set(o.quoted) & set(o.question.sources)) for o in answerable)
    quoted = sum(len(o.quoted) for o in outcomes)
    off_topic = sum(p not in o.question.sources for o in outcomes for p in o.quoted)
    return [
        _share(answered, len(answerable)),
        _share(sum(not o.quoted for o in answerable), len(answerable)),
        *(_caught([o for o in outcomes if not o.question.sources and o.near is near]) for near in (True, False)),
        _share(off_topic, quoted),
    ]


def _caught(unanswerable: list[Outcome]) -> str:
    return _share(sum(not o.quoted for o in unanswerable), len(unanswerable))


def _share(n: int, total: int) -> str:
    return f"{n}/{total} ({n / total:.0%})" if total else "-"


def show(name: str, outcomes: list[Outcome]) -> None:
    for o in outcomes:
        if o.question.sources and not o.quoted:
            print(f"  {name}: refused {o.question.id} {o.question.question!r}")
        off = [p for p in o.quoted if p not in o.question.sources]
        if off:
            print(f"  {name}: off-topic for {o.question.id} {o.question.question!r}: {off}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/qwenbot-bench-retrieval"))
    parser.add_argument(
        "--sets",
        nargs="+",
        default=["small", "small-near", "docs", "docs-near", "scifact-small", "scifact-small-near"],
    )
    parser.add_argument(
        "--show", action="store_true", help="list the refused answerable questions and off-topic quotes"
    )
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    settings = load_settings(None, llm_base_url=None)
    config = dataclasses.replace(IndexConfig(index_dir=args.cache), collection="bench")
    embedder = CachingEmbedder(get_embedder(config.embedding_model), args.cache)
    columns = [
        "answerable answered",
        "answerable refused",
        "near-domain caught",
        "other unansw. caught",
        "off-topic quoted",
    ]
    header = f"{'set':<28} {'rule':<7}" + "".join(f" {c:>20}" for c in columns)
    print(header)
    print("-" * len(header), flush=True)
    for eval_set in eval_sets(args.cache, args.sets):
        results = evaluate_set(settings, config, embedder, args.cache, eval_set)
        for name, outcomes in results.items():
            print(f"{eval_set.name:<28} {name:<7}" + "".join(f" {f:>20}" for f in figures(outcomes)), flush=True)
        if args.show:
            show("after", results["after"])
    return 0


def evaluate_set(
    settings: Settings, config: IndexConfig, embedder: CachingEmbedder, cache: Path, eval_set: EvalSet
) -> dict[str, list[Outcome]]:
    config = build_index(embedder, cache, eval_set, config)
    embedder.save()
    return run_set(settings, config, embedder, eval_set)


if __name__ == "__main__":
    sys.exit(main())

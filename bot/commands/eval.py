"""`qwenbot eval QUESTIONS.jsonl --docs DIR`: the bot's retrieval, abstention and (with --answers) answers,
measured on an index of DIR built for the run."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path

from bot.answer.evaluation import run_eval
from bot.answer.pipeline import AnswerPipeline
from bot.errors import UsageError
from bot.llm.client import build_client
from bot.settings import Settings
from retrieval.errors import QuestionsError
from retrieval.evaluation import Question, load_questions
from retrieval.indexer import Indexer, format_summary
from retrieval.search import Searcher

EVAL_COLLECTION = "qwenbot-eval"


def main(settings: Settings, args: argparse.Namespace) -> int:
    try:
        questions = load_questions(args.questions)
    except QuestionsError as exc:  # the file named on the command line: exit 2, as for the other arguments
        raise UsageError(str(exc)) from None
    if not args.docs.is_dir():
        raise UsageError(f"--docs {args.docs}: no such folder")
    if args.store is not None and args.store.resolve() == settings.index_dir.resolve():
        raise UsageError(f"--store {args.store} is the bot's index (QWENBOT_INDEX_DIR); give the eval its own folder")
    if args.store is not None:
        return _run(settings, args, questions, args.store)
    with tempfile.TemporaryDirectory(prefix="qwenbot-eval-") as tmp:
        return _run(settings, args, questions, Path(tmp))


def _run(settings: Settings, args: argparse.Namespace, questions: list[Question], store: Path) -> int:
    # Always a local store of its own: the eval never reads or writes the bot's index or Chroma server.
    config = dataclasses.replace(settings.index_config(index_dir=store), chroma_host=None, collection=EVAL_COLLECTION)
    stats = Indexer(config).run([args.docs], progress=sys.stderr.isatty())
    for error in stats.errors:
        print(error, file=sys.stderr)
    print(format_summary(stats), file=sys.stderr)
    llm = build_client(settings.llm_config()) if args.answers else None  # retrieval alone never calls the model
    if args.answers and llm is None:
        print("qwenbot eval: warning: --answers with no QWENBOT_LLM_BASE_URL: answers are extractive", file=sys.stderr)
    with Searcher(config) as searcher:
        pipeline = AnswerPipeline(settings.answer_config(), searcher, llm)
        if args.details is None:
            report = run_eval(pipeline, questions, set(searcher.document_paths()), answers=args.answers)
        else:
            with args.details.open("w", encoding="utf-8") as details:
                report = run_eval(
                    pipeline, questions, set(searcher.document_paths()), answers=args.answers, details=details
                )
    if report.missing_sources:
        shown = ", ".join(report.missing_sources[:5]) + (" …" if len(report.missing_sources) > 5 else "")
        print(
            f"qwenbot eval: warning: {len(report.missing_sources)} source(s) named in {args.questions} are not "
            f"among the indexed documents of {args.docs}: {shown}",
            file=sys.stderr,
        )
    print(json.dumps(report.to_json()) if args.json else report.to_text())
    return 0

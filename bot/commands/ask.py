"""`qwenbot ask`: the Slack pipeline in the terminal. The answer streams to stdout, progress to stderr.

Exit status (also in `qwenbot ask --help`): 0 answered, or said the docs don't cover it; 1 no answer at
all (no index...); 2 a bad setting; 3 the configured model failed, so the answer quotes the docs instead
(or was cut short): a script must not take that for the model's answer.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from collections.abc import Iterator
from typing import TextIO

from bot.answer.pipeline import AnswerPipeline
from bot.answer.records import Answer, Delta, Done, PipelineEvent, Source, Status
from bot.errors import NotReadyError
from bot.indexing.control import open_searcher
from bot.llm.client import build_client
from bot.settings import Settings
from retrieval.models import SearchFilter
from retrieval.store import index_exists

EXIT_MODEL_FAILED = 3

# what the reader got instead, by the answer's mode, when the configured model failed
_INSTEAD = {
    "extractive": "quoted the docs instead",
    "not_found": "and no passage was close enough to quote",
    "failed": "and no passage answers it clearly enough to quote",
    "generated": "the answer was cut short",
}


def main(settings: Settings, args: argparse.Namespace) -> int:
    config = settings.index_config()
    if not index_exists(config):
        raise NotReadyError(f"no index at {config.index_dir}: run `qwenbot index` first")
    scope = SearchFilter(tuple(args.path), tuple(args.tag)) if args.path or args.tag else None
    # A failed model call is told once, below, as this command's own line (exit 3), not again as a log line.
    logging.getLogger(AnswerPipeline.__module__).setLevel(logging.ERROR)
    with open_searcher(config) as searcher:  # through the running bot while one holds the index
        pipeline = AnswerPipeline(settings.answer_config(), searcher, build_client(settings.llm_config()))
        events = pipeline.run(args.question, [], scope)
        answer = _final_answer(events) if args.json else _stream(events, sys.stdout, sys.stderr)
    if args.json:
        print(json.dumps(answer_json(answer), ensure_ascii=False, indent=2))
    if answer.model_error is None:
        return 0
    if not settings.llm_base_url:  # quoting the docs is the configured mode, not a failure
        print(f"[{answer.model_error}]", file=sys.stderr)
        return 0
    instead = _INSTEAD.get(answer.mode, "no answer from the model")
    print(f"qwenbot ask: model failed, {instead}: {answer.model_error}", file=sys.stderr)
    return EXIT_MODEL_FAILED


def _final_answer(events: Iterator[PipelineEvent]) -> Answer:
    return next(e.answer for e in events if isinstance(e, Done))


def _stream(events: Iterator[PipelineEvent], out: TextIO, err: TextIO) -> Answer:
    answer: Answer | None = None
    for event in events:
        if isinstance(event, Status):
            print(f"[{event.text}]", file=err, flush=True)
        elif isinstance(event, Delta):
            out.write(event.text)
            out.flush()
        elif isinstance(event, Done):
            answer = event.answer
    assert answer is not None
    out.write("\n")
    if answer.sources:
        heading = "Sources:" if answer.cited else "Closest documents:"
        print(f"\n{heading}", file=out)
        for source in answer.sources:
            print(f"  {format_source(source)}", file=out)
    out.flush()
    return answer


def format_source(source: Source) -> str:
    where = source.title
    if source.heading_path and source.heading_path != source.title:
        where += f" › {source.heading_path}"
    details = [source.path + (f" p. {source.page}" if source.page else "")]
    if source.updated:
        details.append(f"updated {source.updated}")
    if source.url:
        details.append(source.url)
    archived = " (archived)" if source.archived else ""
    return f"[{source.n}] {where}{archived} ({', '.join(details)})"


def answer_json(answer: Answer) -> dict[str, object]:
    return {
        "text": answer.text,
        "mode": answer.mode,
        "sources": [dataclasses.asdict(s) for s in answer.sources],
        "usage": dataclasses.asdict(answer.usage),
        "timings": {k: round(v, 3) for k, v in answer.timings.items()},
        "model_error": answer.model_error,
    }

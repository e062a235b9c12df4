"""`qwenbot gaps [--since 7d] [--json]` (also `qwenbot questions --unanswered`): the questions the docs
did not answer or that were rated 👎, grouped by similar wording, with the nearest documents and their
owners: the same report the bot's digest posts to Slack (bot/gaps.py)."""

from __future__ import annotations

import argparse
import json
import sys
import time

from bot.control import local_or_bot
from bot.gaps import build_report, parse_since, report_json, report_text
from bot.settings import Settings
from bot.state import State
from retrieval.embeddings import embedder_for
from retrieval.search import Searcher
from retrieval.store import index_exists


def main(settings: Settings, args: argparse.Namespace) -> int:
    window = parse_since(args.since)
    if (missing := State.missing(settings)) is not None:
        print(f"qwenbot: {missing}", file=sys.stderr)
        return 1
    config = settings.index_config()
    if not index_exists(config):
        print(f"qwenbot: no index at {config.index_dir}: run `qwenbot index` first", file=sys.stderr)
        return 1
    until = time.time()
    since = until - window.total_seconds()
    state = State.from_settings(settings)
    try:
        with local_or_bot(config) as bot:
            if bot is not None:  # a running bot holds the index: search through it, embed here
                remote = bot.searcher(config)
                report = build_report(
                    state, embedder_for(config).encode, lambda q, k: remote.search(q, k=k), since, until
                )
            else:
                with Searcher(config) as searcher:
                    report = build_report(
                        state, searcher.embedder.encode, lambda q, k: searcher.search(q, k=k), since, until
                    )
    finally:
        state.close()
    if args.json:
        print(json.dumps(report_json(report), ensure_ascii=False, indent=2))
    else:
        print(report_text(report))
    return 0

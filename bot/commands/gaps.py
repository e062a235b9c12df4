"""`qwenbot gaps [--since 7d] [--json]` (also `qwenbot questions --unanswered`): the questions the docs
did not answer or that were rated 👎, grouped by similar wording, with the nearest documents and their
owners: the same report the bot's digest posts to Slack (bot/gaps/), under the same privacy rules
(QWENBOT_GAPS_INCLUDE; each group's nearest docs searched in its channel's scope)."""

from __future__ import annotations

import argparse
import json
import time

from bot.errors import NotReadyError
from bot.gaps.report import Embed, ReportSource, build_report, parse_since, report_json, report_text
from bot.indexing.control import local_or_bot
from bot.settings import Settings
from bot.slack.policy import ChannelScopes, load_channel_scopes
from bot.state import State
from retrieval.embeddings import embedder_for
from retrieval.models import Hit, SearchFilter
from retrieval.search import Searcher, SearchService
from retrieval.store import index_exists


def _source(
    settings: Settings, scopes: ChannelScopes, state: State, embed: Embed, searcher: SearchService
) -> ReportSource:
    def search(query: str, k: int, scope: SearchFilter) -> list[Hit]:
        return searcher.search(query, k=k, filter=scope)

    return ReportSource(state, embed, search, settings.gaps_include, scopes)


def main(settings: Settings, args: argparse.Namespace) -> int:
    window = parse_since(args.since)
    scopes = load_channel_scopes(settings.channel_scopes_file)
    if (missing := State.missing(settings.state_config())) is not None:
        raise NotReadyError(missing)
    config = settings.index_config()
    if not index_exists(config):
        raise NotReadyError(f"no index at {config.index_dir}: run `qwenbot index` first")
    until = time.time()
    since = until - window.total_seconds()
    state = State.from_config(settings.state_config())
    try:
        with local_or_bot(config) as bot:
            if bot is not None:  # a running bot holds the index: search through it, embed here
                source = _source(settings, scopes, state, embedder_for(config).encode, bot.searcher(config))
                report = build_report(source, since, until)
            else:
                with Searcher(config) as searcher:
                    source = _source(settings, scopes, state, searcher.embedder.encode, searcher)
                    report = build_report(source, since, until)
    finally:
        state.close()
    if args.json:
        print(json.dumps(report_json(report), ensure_ascii=False, indent=2))
    else:
        print(report_text(report))
    return 0

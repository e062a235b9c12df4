"""`qwenbot sources`: each source's type, documents, last successful sync, next sync and last error, the
docs folder first (bot/sources/status.py). Reads the shared state and the index manifest: it works beside
a running bot."""

from __future__ import annotations

import argparse
import sys

from bot.settings import Settings
from bot.sources.status import docs_row, source_rows, table
from bot.state import State
from retrieval.indexer import Indexer
from retrieval.sources.config import load_sources


def main(settings: Settings, args: argparse.Namespace) -> int:
    config = settings.sources_config()
    specs = load_sources(config.sources_file, config.env)
    listing = Indexer(settings.index_config(), docs_dir=settings.docs_dir).listing()
    rows = [docs_row(listing, settings.reindex_interval_minutes, settings.watch_docs)]
    statuses = []
    if specs and State.missing(settings.state_config()) is None:
        state = State.from_config(settings.state_config())
        try:
            statuses = state.sources.all_status()
        finally:
            state.close()
    rows += source_rows(specs, statuses)
    for line in table(rows):
        print(line)
    if not specs:
        print(
            "no other sources: list them in a file named by QWENBOT_SOURCES_FILE (deploy/sources.example.yml)",
            file=sys.stderr,
        )
    return 0

"""`qwenbot sync [SOURCE]`: syncs the sources now. Handed to the running bot over the control channel
when it holds the local index (as `qwenbot index` is); run here otherwise (no bot, or a Chroma server:
the shared lock keeps it to one sync at a time across replicas)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bot.errors import UsageError
from bot.indexing.control import local_or_bot
from bot.indexing.job import ERROR
from bot.settings import Settings
from bot.sources.runner import SourceRunner, unknown_source
from bot.state import State
from retrieval.indexer import Indexer
from retrieval.models import IndexStats
from retrieval.sources.config import load_sources


def main(settings: Settings, args: argparse.Namespace) -> int:
    """Exit status 0 when every sync succeeded, 1 when one failed, 2 for an unknown source."""
    config = settings.sources_config()
    specs = load_sources(config.sources_file, config.env)
    if not specs:
        raise UsageError(
            "no sources to sync: list them in a file named by QWENBOT_SOURCES_FILE (deploy/sources.example.yml)"
        )
    if args.source is not None and args.source not in {s.name for s in specs}:
        raise UsageError(unknown_source(args.source, [s.name for s in specs]))
    with local_or_bot(settings.index_config()) as bot:
        if bot is not None:  # the running bot holds the local index: it syncs and sends its lines here
            print(f"the running bot (pid {bot.pid}) holds the index: the sync runs there", file=sys.stderr)
            return bot.job("sync", {"source": args.source}, _print)
        indexer = Indexer(settings.index_config(), docs_dir=settings.docs_dir)

        def index_root(name: str, folder: Path, why: str) -> IndexStats:
            return indexer.run([folder], progress=False, add_root=name, move_root=True)

        state = State.from_config(settings.state_config())
        try:
            return SourceRunner(config, specs, state, index_root).sync_named(args.source, _print, "qwenbot sync")
        finally:
            state.close()


def _print(line: str) -> None:
    print(line, file=sys.stderr if line.startswith(ERROR) else sys.stdout, flush=True)

"""`qwenbot index`: index, list, remove or prune documents (the job itself: bot/indexing/job.py)."""

from __future__ import annotations

import argparse
import sys

from bot.indexing.control import local_or_bot
from bot.indexing.job import ERROR, IndexRequest, run_index_job
from bot.settings import Settings


def main(settings: Settings, args: argparse.Namespace) -> int:
    """Exit status: see bot/indexing/job.py (and `qwenbot index --help`)."""
    request = IndexRequest.from_args(args)
    if request.list_only:  # reads the manifest alone: works beside any other process
        return run_index_job(settings.index_config(), settings.docs_dir, request, _print, progress=not args.no_progress)
    with local_or_bot(settings.index_config()) as bot:
        if bot is not None:  # a running bot holds the local index: it runs the job and sends its lines here
            print(f"the running bot (pid {bot.pid}) holds the index: the job runs there", file=sys.stderr)
            return bot.index(request, _print)
        return run_index_job(settings.index_config(), settings.docs_dir, request, _print, progress=not args.no_progress)


def _print(line: str) -> None:
    print(line, file=sys.stderr if line.startswith(ERROR) else sys.stdout, flush=True)

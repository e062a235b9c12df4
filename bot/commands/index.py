"""`qwenbot index [PATH ...]`: incremental indexing of folders and files, with a summary line."""

from __future__ import annotations

import argparse
import sys

from bot.settings import Settings
from retrieval.indexer import Indexer, format_summary


def main(settings: Settings, args: argparse.Namespace) -> int:
    """Exit status: 0 when every file was indexed, unchanged or skipped; 1 when any file failed."""
    paths = list(args.paths) or [settings.docs_dir]
    stats = Indexer(settings.index_config()).run(paths, progress=not args.no_progress)
    for error in stats.errors:
        print(error, file=sys.stderr)
    print(format_summary(stats))
    return 1 if stats.failed else 0

"""`qwenbot questions --unanswered [--since 7d] [--json]`: the knowledge-gap report, under the name
an admin looking at the bot's questions reaches for. The same report as `qwenbot gaps`."""

from __future__ import annotations

import argparse

from bot.commands import gaps
from bot.errors import UsageError
from bot.settings import Settings


def main(settings: Settings, args: argparse.Namespace) -> int:
    if not args.unanswered:
        raise UsageError(
            "takes --unanswered (the questions the docs did not answer, as `qwenbot gaps` lists them), "
            "with --since WINDOW and --json"
        )
    return gaps.main(settings, args)

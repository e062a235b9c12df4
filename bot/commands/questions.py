"""`qwenbot questions --unanswered [--since 7d] [--json]`: the knowledge-gap report, under the name
an admin looking at the bot's questions reaches for. The same report as `qwenbot gaps`."""

from __future__ import annotations

import argparse

from bot.commands import gaps
from bot.errors import ConfigError
from bot.settings import Settings


def main(settings: Settings, args: argparse.Namespace) -> int:
    if not args.unanswered:
        raise ConfigError("qwenbot questions lists the unanswered ones: add --unanswered (or run `qwenbot gaps`)")
    return gaps.main(settings, args)

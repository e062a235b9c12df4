"""`qwenbot feedback export`: the 👎-rated answers as questions.jsonl lines, to grow the eval set.

Each line has the eval fields (`id`, `question`, `sources`) plus what the bot said and why it was
rated down. `sources` is left empty: which documents really answer the question is for a person to
fill in (the bot's own citations are in `bot_sources`, and they were judged unhelpful).

No Slack id of a person is written: the rater appears only as the keyed hash the bot's log lines use
(QWENBOT_LOG_USER_SALT), and a DM's channel id not at all. The file is created readable by its owner
only: it holds the text of questions asked in DMs and private channels.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TextIO

from bot.errors import NotReadyError
from bot.logs import UserHasher
from bot.settings import Settings
from bot.state import State
from bot.state.feedback import FeedbackRecord


def export_line(record: FeedbackRecord, hash_user: Callable[[str], str]) -> str:
    return json.dumps(
        {
            "id": f"feedback-{record.answer_id}-{hash_user(record.user)}",
            "question": record.question,
            "sources": [],
            "bot_answer": record.answer,
            "bot_mode": record.mode,
            "bot_sources": record.source_paths,
            "reason": record.reason or "",
            "channel": None if record.channel.startswith("D") else record.channel,
            "rated_at": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="seconds"),
        },
        ensure_ascii=False,
    )


def export(state: State, out: TextIO, hash_user: Callable[[str], str]) -> int:
    count = 0
    for record in state.feedback.records(rating="down"):
        out.write(export_line(record, hash_user) + "\n")
        count += 1
    return count


def main(settings: Settings, args: argparse.Namespace) -> int:
    if (missing := State.missing(settings.state_config())) is not None:
        raise NotReadyError(missing)
    state = State.from_config(settings.state_config())
    hash_user = UserHasher.from_config(settings.log_config())
    try:
        if args.output is None:
            count = export(state, sys.stdout, hash_user)
        else:
            args.output.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.fchmod(fd, 0o600)  # a file that was there already too
            with open(fd, "w", encoding="utf-8") as out:
                count = export(state, out, hash_user)
    finally:
        state.close()
    print(f"exported {count} 👎 answer(s)" + (f" to {args.output}" if args.output else ""), file=sys.stderr)
    return 0

"""`qwenbot feedback export`: the 👎-rated answers as questions.jsonl lines, to grow the eval set.

Each line has the eval fields (`id`, `question`, `sources`) plus what the bot said and why it was
rated down. `sources` is left empty: which documents really answer the question is for a person to
fill in (the bot's own citations are in `bot_sources`, and they were judged unhelpful).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import TextIO

from bot.settings import Settings
from bot.state import FeedbackRecord, State


def export_line(record: FeedbackRecord) -> str:
    return json.dumps(
        {
            "id": f"feedback-{record.answer_id}-{record.user}",
            "question": record.question,
            "sources": [],
            "bot_answer": record.answer,
            "bot_mode": record.mode,
            "bot_sources": record.source_paths,
            "reason": record.reason or "",
            "channel": record.channel,
            "rated_at": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="seconds"),
        },
        ensure_ascii=False,
    )


def export(state: State, out: TextIO) -> int:
    count = 0
    for record in state.feedback(rating="down"):
        out.write(export_line(record) + "\n")
        count += 1
    return count


def main(settings: Settings, args: argparse.Namespace) -> int:
    if (missing := State.missing(settings)) is not None:
        print(f"qwenbot feedback: {missing}", file=sys.stderr)
        return 1
    state = State.from_settings(settings)
    try:
        if args.output is None:
            count = export(state, sys.stdout)
        else:
            args.output.parent.mkdir(parents=True, exist_ok=True)
            with args.output.open("w", encoding="utf-8") as out:
                count = export(state, out)
    finally:
        state.close()
    print(f"exported {count} 👎 answer(s)" + (f" to {args.output}" if args.output else ""), file=sys.stderr)
    return 0

"""The auto-mode question filter (bot/knowledge/filter.py) on a labelled set of channel messages.

    python -m bench.bench_question_filter [tests/fixtures/channel_messages.jsonl] [--show]

Each line is {"text": "<Slack message text>", "question": true|false}: true when the message is a
question meant for help (what a support channel's auto mode should answer). Prints precision and
recall of `reads_as_question` on it (positive = reads as a question), and with --show the messages it
gets wrong. The figures are in README.md ("Support channels and learned answers")."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from bot.knowledge.filter import reads_as_question

DEFAULT_SET = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "channel_messages.jsonl"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("labelled", nargs="?", type=Path, default=DEFAULT_SET)
    parser.add_argument("--show", action="store_true", help="print the messages the filter gets wrong")
    args = parser.parse_args(argv)
    lines = [json.loads(line) for line in args.labelled.read_text(encoding="utf-8").splitlines() if line.strip()]
    counts: Counter[tuple[bool, bool]] = Counter()  # (the filter says a question, it is one)
    for line in lines:
        said, truth = reads_as_question(line["text"]), bool(line["question"])
        counts[said, truth] += 1
        if args.show and said != truth:
            print(f"{'false positive' if said else 'missed'}: {line['text']}")
    tp, fp, fn, tn = counts[True, True], counts[True, False], counts[False, True], counts[False, False]
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    print(f"{len(lines)} messages ({tp + fn} questions): precision {precision:.2f}, recall {recall:.2f}")
    print(f"answered {tp + fp}: {tp} questions, {fp} not; missed {fn} questions; left alone {tn} others")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

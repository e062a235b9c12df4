"""`qwenbot learned list | show ID | remove ID | export FOLDER`: the answers experts saved in Slack
(bot/knowledge/). `export` writes the active and archived ones as the Markdown files (front matter:
title, url, updated, owner, status) the bot mirrors and indexes, e.g. to keep them in a docs repository.

`remove` takes one out of the answers in the state store; every running bot replica then takes it out
of its mirror and its index within a minute (its keep-up loop), and a bot started later never indexes
it. In Slack, the "Remove" button under the saved notice does the same at once."""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path

from bot.errors import NotReadyError, UsageError
from bot.knowledge.learned import as_document, document_key
from bot.settings import Settings
from bot.state import State
from bot.state.knowledge import LearnedAnswer
from bot.text import short
from retrieval.sources.mirror import write_document


def _day(at: float | None) -> str:
    return dt.datetime.fromtimestamp(at, dt.UTC).date().isoformat() if at is not None else "never"


def _line(a: LearnedAnswer) -> str:
    # the question and the names are people's text: JSON-quoted, so no control character reaches the terminal
    return (
        f"{a.id:>5}  {a.status:<8}  {_day(a.created)}  expires {_day(a.expires)}  {a.channel}  "
        f"by {json.dumps(a.author_name)}  {json.dumps(short(a.question, 80))}"
    )


def _show(a: LearnedAnswer) -> str:
    fields = {
        "id": a.id,
        "status": a.status,
        "question": a.question,
        "answer": a.answer,
        "author": f"{a.author_name} ({a.author})",
        "saved by": a.saved_by,
        "channel": a.channel,
        "thread": a.permalink or a.thread_ts,
        "scope": a.scope,
        "saved": _day(a.created),
        "expires": _day(a.expires),
        "document": document_key(a),
    }
    return "\n".join(f"{k}: {json.dumps(v) if isinstance(v, str) else v}" for k, v in fields.items())


def _export(state: State, folder: Path) -> int:
    answers = state.knowledge.learned_answers()
    for answer in answers:
        write_document(folder, as_document(answer))
    print(f"exported {len(answers)} learned answer{'' if len(answers) == 1 else 's'} to {folder}")
    return 0


def main(settings: Settings, args: argparse.Namespace) -> int:
    if (missing := State.missing(settings.state_config())) is not None:
        raise NotReadyError(missing)
    state = State.from_config(settings.state_config())
    try:
        if args.learned_command == "list":
            answers = state.knowledge.learned_answers(include_removed=args.all)
            for a in answers:
                print(_line(a))
            print(f"{len(answers)} learned answer{'' if len(answers) == 1 else 's'}")
            return 0
        if args.learned_command == "export":
            return _export(state, args.folder)
        found = state.knowledge.learned(args.id)
        if found is None:
            raise UsageError(f"no learned answer {args.id}: `qwenbot learned list` shows their ids")
        if args.learned_command == "show":
            print(_show(found))
        elif state.knowledge.set_status(found.id, "removed"):
            print(f"removed learned answer {found.id}: running bots stop citing it within a minute")
        else:
            print(f"learned answer {found.id} was removed already")
        return 0
    finally:
        state.close()

"""Slash commands: `/qwenbot status`, `/qwenbot reindex` and `/qwenbot sync [SOURCE]` (admins) and
`/qwenbot help`; the first three are rate-limited per user."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from slack_bolt import Ack, App, Respond

from bot.errors import QwenbotError, user_message
from bot.slack.answering import error_id
from bot.slack.mrkdwn import escape
from bot.slack.policy import RateLimiter
from bot.slack.render.notices import HELP, apology, rate_limited
from bot.text import short
from retrieval.errors import RetrievalError

log = logging.getLogger(__name__)

SLASH_COMMAND = "/qwenbot"
NOT_AN_ADMIN = "Only qwenbot admins can re-index or sync (their Slack user ids are in QWENBOT_ADMIN_USERS)."
COMMANDS_PER_MINUTE = 5  # `/qwenbot status`, `reindex` and `sync` per user (help is free)
_REPORT_LIMIT = 2900  # characters of the job's lines in the reply; the summary (the last line) is always kept


@dataclass(frozen=True)
class Reindexer:
    """`/qwenbot reindex` and `/qwenbot sync`: who may run them, and the jobs (the ones `qwenbot index`
    and `qwenbot sync` run): each writes its lines through the callable it is given and returns the exit
    status. `sync` gets the source named (None: every source)."""

    admins: frozenset[str]
    run: Callable[[Callable[[str], None]], int]
    sync: Callable[[str | None, Callable[[str], None]], int] | None = None


# `/qwenbot ask QUESTION`: answered on the answer pool, to the asker alone (bot/slack/private.py)
AskPrivately = Callable[[dict[str, Any], str, Respond], None]
LOOKING = "Looking it up; only you will see the answer…"
ASK_USAGE = "Ask me something, and only you will see the answer: `/qwenbot ask how many vacation days do I get?`"


def register(
    app: App,
    limiter: RateLimiter,
    status_report: Callable[[], str] | None,
    reindexer: Reindexer | None = None,
    ask_privately: AskPrivately | None = None,
) -> None:
    @app.command(SLASH_COMMAND)
    def on_command(ack: Ack, command: dict[str, Any], respond: Respond) -> None:
        words = (command.get("text") or "").split()
        verb = words[0].lower() if words else ""
        if verb == "ask" and ask_privately is not None:  # its rate limit is the questions' own
            question = (command.get("text") or "").strip()[3:].strip()
            ack(text=LOOKING if question else ASK_USAGE, response_type="ephemeral")
            if question:
                ask_privately(command, question, respond)
            return
        if verb not in ("status", "reindex", "sync"):
            unknown = f"Unknown command '{escape(short(verb, 40))}'.\n\n" if verb not in ("", "help") else ""
            ack(text=unknown + HELP, response_type="ephemeral")
            return
        # each one costs a job or a network check: a user sending many must not hold up the others
        wait = math.ceil(limiter.check(f"command:{command.get('user_id')}"))
        if wait:
            ack(text=rate_limited(wait), response_type="ephemeral")
        elif verb == "reindex":
            _reindex(ack, command, respond, reindexer)
        elif verb == "sync":
            _sync(ack, command, respond, reindexer, words[1] if len(words) > 1 else None)
        else:
            _status(ack, respond, status_report)


def _status(ack: Ack, respond: Respond, status_report: Callable[[], str] | None) -> None:
    ack()  # the status checks can take a few seconds: answer through the response_url
    try:
        text = status_report() if status_report else "Status is not available."
    except Exception:
        eid = error_id()
        log.exception("status report failed (error id %s)", eid)
        text = apology(eid)
    respond(text=text, response_type="ephemeral")


def _reindex(ack: Ack, command: dict[str, Any], respond: Respond, reindexer: Reindexer | None) -> None:
    if _admin(ack, command, reindexer, "reindex") and reindexer is not None:
        ack(text="Indexing new and changed docs…", response_type="ephemeral")  # a job outlasts Slack's 3 s
        _run_job(respond, "reindex", reindexer.run, "Indexed")


def _sync(ack: Ack, command: dict[str, Any], respond: Respond, reindexer: Reindexer | None, source: str | None) -> None:
    if not _admin(ack, command, reindexer, "sync") or reindexer is None:
        return
    if reindexer.sync is None:
        ack(text="This bot syncs no sources (QWENBOT_SOURCES_FILE is unset).", response_type="ephemeral")
        return
    job = reindexer.sync
    ack(text=f"Syncing {escape(short(source, 60)) if source else 'every source'}…", response_type="ephemeral")
    _run_job(respond, "sync", lambda out: job(source, out), "Synced")


def _admin(ack: Ack, command: dict[str, Any], reindexer: Reindexer | None, verb: str) -> bool:
    """Whether the command's user is an admin; if not, says so."""
    user = str(command.get("user_id") or "")
    if reindexer is not None and user in reindexer.admins:
        log.info("/qwenbot %s by %s", verb, user)
        return True
    log.info("/qwenbot %s refused: %s is not in QWENBOT_ADMIN_USERS", verb, user)
    ack(text=NOT_AN_ADMIN, response_type="ephemeral")
    return False


def _run_job(respond: Respond, verb: str, job: Callable[[Callable[[str], None]], int], done: str) -> None:
    lines: list[str] = []
    try:
        status = job(lines.append)
    except (QwenbotError, RetrievalError) as exc:  # an unknown source, say: its one line
        respond(text=f":warning: {escape(user_message(exc))}", response_type="ephemeral")
        return
    except Exception:
        eid = error_id()
        log.exception("/qwenbot %s failed (error id %s)", verb, eid)
        respond(text=apology(eid), response_type="ephemeral")
        return
    respond(text=_report(status, lines, done), response_type="ephemeral")


def _report(status: int, lines: list[str], done: str = "Indexed") -> str:
    """The job's lines in a code block: file names are untrusted text, made inert."""
    head = f":white_check_mark: {done}." if status == 0 else f":warning: {done}, with errors:"
    kept = lines[-1:]
    for line in reversed(lines[:-1]):
        if sum(len(k) + 1 for k in kept) + len(line) > _REPORT_LIMIT:
            kept.insert(0, "…")
            break
        kept.insert(0, line)
    return head + "\n```\n" + escape("\n".join(kept)) + "\n```"

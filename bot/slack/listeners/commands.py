"""Slash commands: `/qwenbot status`, `/qwenbot reindex` (admins) and `/qwenbot help`; the first two
are rate-limited per user."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from slack_bolt import Ack, App, Respond

from bot.slack.answering import error_id
from bot.slack.mrkdwn import escape
from bot.slack.policy import RateLimiter
from bot.slack.render.notices import HELP, apology, rate_limited
from bot.text import short

log = logging.getLogger(__name__)

SLASH_COMMAND = "/qwenbot"
NOT_AN_ADMIN = "Only qwenbot admins can re-index (their Slack user ids are in QWENBOT_ADMIN_USERS)."
COMMANDS_PER_MINUTE = 5  # `/qwenbot status` and `reindex` per user (help is free)
_REPORT_LIMIT = 2900  # characters of the job's lines in the reply; the summary (the last line) is always kept


@dataclass(frozen=True)
class Reindexer:
    """`/qwenbot reindex`: who may run it, and the job (the one `qwenbot index` runs): it writes its
    lines through the callable it is given and returns the exit status."""

    admins: frozenset[str]
    run: Callable[[Callable[[str], None]], int]


def register(
    app: App, limiter: RateLimiter, status_report: Callable[[], str] | None, reindexer: Reindexer | None = None
) -> None:
    @app.command(SLASH_COMMAND)
    def on_command(ack: Ack, command: dict[str, Any], respond: Respond) -> None:
        words = (command.get("text") or "").split()
        verb = words[0].lower() if words else ""
        if verb not in ("status", "reindex"):
            unknown = f"Unknown command '{escape(short(verb, 40))}'.\n\n" if verb not in ("", "help") else ""
            ack(text=unknown + HELP, response_type="ephemeral")
            return
        # each one costs a job or a network check: a user sending many must not hold up the others
        wait = math.ceil(limiter.check(f"command:{command.get('user_id')}"))
        if wait:
            ack(text=rate_limited(wait), response_type="ephemeral")
        elif verb == "reindex":
            _reindex(ack, command, respond, reindexer)
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
    user = str(command.get("user_id") or "")
    if reindexer is None or user not in reindexer.admins:
        log.info("/qwenbot reindex refused: %s is not in QWENBOT_ADMIN_USERS", user)
        ack(text=NOT_AN_ADMIN, response_type="ephemeral")
        return
    ack(text="Indexing new and changed docs…", response_type="ephemeral")  # a job outlasts Slack's 3 s
    log.info("/qwenbot reindex by %s", user)
    lines: list[str] = []
    try:
        status = reindexer.run(lines.append)
    except Exception:
        eid = error_id()
        log.exception("/qwenbot reindex failed (error id %s)", eid)
        respond(text=apology(eid), response_type="ephemeral")
        return
    respond(text=_report(status, lines), response_type="ephemeral")


def _report(status: int, lines: list[str]) -> str:
    """The job's lines in a code block: file names are untrusted text, made inert."""
    head = ":white_check_mark: Indexed." if status == 0 else ":warning: Indexed, with errors:"
    kept = lines[-1:]
    for line in reversed(lines[:-1]):
        if sum(len(k) + 1 for k in kept) + len(line) > _REPORT_LIMIT:
            kept.insert(0, "…")
            break
        kept.insert(0, line)
    return head + "\n```\n" + escape("\n".join(kept)) + "\n```"

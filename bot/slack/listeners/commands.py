"""Slash commands: `/qwenbot status` and `/qwenbot help`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App, Respond

from bot.slack import render
from bot.slack.answering import error_id

log = logging.getLogger(__name__)

SLASH_COMMAND = "/qwenbot"


def register(app: App, status_report: Callable[[], str] | None) -> None:
    @app.command(SLASH_COMMAND)
    def on_command(ack: Ack, command: dict[str, Any], respond: Respond) -> None:
        words = (command.get("text") or "").split()
        if not words or words[0].lower() != "status":
            ack(text=render.HELP, response_type="ephemeral")
            return
        ack()  # the status checks can take a few seconds: answer through the response_url
        try:
            text = status_report() if status_report else "Status is not available."
        except Exception:
            eid = error_id()
            log.exception("status report failed (error id %s)", eid)
            text = render.apology(eid)
        respond(text=text, response_type="ephemeral")

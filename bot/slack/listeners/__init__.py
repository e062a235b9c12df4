"""Bolt listeners, one module per Slack surface; `register_listeners` wires them all onto the app."""

from __future__ import annotations

from collections.abc import Callable

from slack_bolt import App

from bot.slack.answering import Answerer
from bot.slack.listeners import actions, commands, events, views


def register_listeners(
    app: App,
    answerer: Answerer,
    status_report: Callable[[], str] | None,
    reindexer: commands.Reindexer | None = None,
) -> None:
    events.register(app, answerer)
    actions.register(app, answerer)
    views.register(app, answerer)
    commands.register(app, status_report, reindexer)

"""Bolt listeners, one module per Slack surface; `register_listeners` wires them all onto the app."""

from __future__ import annotations

from collections.abc import Callable

from slack_bolt import App

from bot.slack.answering import Answerer
from bot.slack.listeners import actions, commands, events, views
from bot.slack.policy import RateLimiter
from bot.slack.workers import Workers


def register_listeners(
    app: App,
    answerer: Answerer,
    workers: Workers,
    status_report: Callable[[], str] | None,
    reindexer: commands.Reindexer | None = None,
) -> None:
    events.register(app, answerer, workers)
    actions.register(app, answerer)
    views.register(app, answerer)
    limiter = RateLimiter(commands.COMMANDS_PER_MINUTE, answerer.state)
    commands.register(app, limiter, status_report, reindexer)

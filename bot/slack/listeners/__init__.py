"""Bolt listeners, one module per Slack surface; `register_listeners` wires them all onto the app,
each with the typed set of what it uses (deps.py)."""

from __future__ import annotations

from collections.abc import Callable

from slack_bolt import App

from bot.slack.answering import Answerer
from bot.slack.listeners import actions, commands, events, views
from bot.slack.listeners.deps import EventDeps, FeedbackDeps
from bot.slack.policy import RateLimiter
from bot.slack.questions import Intake
from bot.slack.workers import Workers


def register_listeners(
    app: App,
    answerer: Answerer,
    workers: Workers,
    status_report: Callable[[], str] | None,
    reindexer: commands.Reindexer | None = None,
) -> None:
    """`answerer` answers the questions; the services it was built with are the listeners' too."""
    state, config = answerer.state, answerer.config
    events.register(
        app,
        EventDeps(
            intake=Intake.from_config(config),
            suggest_min_askers=config.suggest_min_askers,
            questions=state.questions,
            threads=state.threads,
            policy=answerer.policy,
            client=answerer.client,
            monitor=answerer.state_monitor,
            workers=workers,
            answering=answerer,
        ),
    )
    feedback = FeedbackDeps(
        claims=state.claims,
        questions=state.questions,
        threads=state.threads,
        feedback=state.feedback,
        gaps=state.gaps,
        policy=answerer.policy,
        client=answerer.client,
        metrics=answerer.metrics,
    )
    actions.register(app, feedback)
    views.register(app, feedback)
    commands.register(app, RateLimiter(commands.COMMANDS_PER_MINUTE, state.limits), status_report, reindexer)

"""Bolt listeners, one module per Slack surface; `register_listeners` wires them all onto the app,
each with the typed set of what it uses (deps.py)."""

from __future__ import annotations

from collections.abc import Callable

from slack_bolt import App

from bot.knowledge.learned import LearnedAnswers
from bot.slack.answering import Answerer
from bot.slack.listeners import actions, commands, events, knowledge, resolved, views
from bot.slack.listeners.deps import EventDeps, FeedbackDeps, KnowledgeDeps
from bot.slack.policy import RateLimiter
from bot.slack.private import PrivateAnswers
from bot.slack.questions import Intake
from bot.slack.workers import Workers


def register_listeners(
    app: App,
    answerer: Answerer,
    workers: Workers,
    status_report: Callable[[], str] | None,
    reindexer: commands.Reindexer | None = None,
    learned: LearnedAnswers | None = None,
) -> None:
    """`answerer` answers the questions; the services it was built with are the listeners' too.
    `learned`: where experts' saved answers go (None: saving is off)."""
    state, config = answerer.state, answerer.config
    knowing = KnowledgeDeps(
        knowledge=state.knowledge,
        questions=state.questions,
        policy=answerer.policy,
        client=answerer.client,
        monitor=answerer.state_monitor,
        workers=workers,
        answering=answerer,
        admins=frozenset(config.admin_users),
        learned=learned,
        claims=state.claims,
    )
    knowledge.register(app, knowing)
    resolved.register(app, knowing)
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
            knowledge=knowing,
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
    private = PrivateAnswers(answerer)
    answerer.privately = private.mention  # `answers: private` channels
    ask_privately = knowledge.register_private(app, private, workers)
    limiter = RateLimiter(commands.COMMANDS_PER_MINUTE, state.limits)
    commands.register(app, limiter, status_report, reindexer, ask_privately)

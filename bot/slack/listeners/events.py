"""Events API: mentions, DMs and follow-ups in the bot's threads become questions."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import App, BoltContext

from bot.slack.answering import Answerer
from bot.slack.questions import question_from

log = logging.getLogger(__name__)


def register(app: App, answerer: Answerer) -> None:
    def on_event(body: dict[str, Any], event: dict[str, Any], context: BoltContext, *, mentioned: bool) -> None:
        question = question_from(
            answerer.settings,
            answerer.state,
            body,
            event,
            bot_user=context.bot_user_id,
            bot_id=context.bot_id,
            mentioned=mentioned,
        )
        if question is not None:
            answerer.handle(question, mentioned=mentioned)

    @app.event("app_mention")
    def on_mention(body: dict[str, Any], event: dict[str, Any], context: BoltContext) -> None:
        on_event(body, event, context, mentioned=True)

    @app.event("message")
    def on_message(body: dict[str, Any], event: dict[str, Any], context: BoltContext) -> None:
        on_event(body, event, context, mentioned=False)

    @app.error
    def on_error(error: Exception, body: dict[str, Any]) -> None:
        log.error("unhandled error in a Slack listener (%s: %s)", type(error).__name__, error)

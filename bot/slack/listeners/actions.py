"""Block actions: the 👍 / 👎 buttons under each answer (👎 opens the reason modal)."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App

from bot.slack import render
from bot.slack.answering import Answerer
from bot.text import int_or_none

log = logging.getLogger(__name__)


def register(app: App, answerer: Answerer) -> None:
    @app.action(render.ACTION_UP)
    def on_thumbs_up(ack: Ack, body: dict[str, Any]) -> None:
        ack()
        if record_feedback(answerer, body, "up") is not None:
            channel = (body.get("channel") or {}).get("id")
            if channel:
                thread_ts = (body.get("message") or {}).get("thread_ts")
                answerer.ephemeral(channel, body["user"]["id"], "Thanks for the feedback!", thread_ts)

    @app.action(render.ACTION_DOWN)
    def on_thumbs_down(ack: Ack, body: dict[str, Any]) -> None:
        ack()
        answer_id = record_feedback(answerer, body, "down")
        if answer_id is not None:
            answerer.client.views_open(trigger_id=body["trigger_id"], view=render.feedback_modal(answer_id))


def record_feedback(answerer: Answerer, body: dict[str, Any], rating: str) -> int | None:
    """Stores the rating; the answer's id, or None for a button on an answer the bot does not know."""
    action = (body.get("actions") or [{}])[0]
    answer_id = int_or_none(action.get("value"))
    if answer_id is None or not answerer.state.answer_exists(answer_id):
        log.warning("feedback for an unknown answer %r ignored", action.get("value"))
        return None
    answerer.state.record_feedback(answer_id, body["user"]["id"], rating)
    return answer_id

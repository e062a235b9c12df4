"""View submissions: the reason given in the 👎 modal."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App

from bot.slack.listeners.deps import FeedbackDeps
from bot.slack.render.feedback import FEEDBACK_VIEW, REASON_ACTION, REASON_BLOCK
from bot.slack.render.notices import FEEDBACK_THANKS
from bot.text import int_or_none


def register(app: App, deps: FeedbackDeps) -> None:
    @app.view(FEEDBACK_VIEW)
    def on_reason(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        answer_id = int_or_none(view.get("private_metadata"))
        value = view.get("state", {}).get("values", {}).get(REASON_BLOCK, {}).get(REASON_ACTION, {})
        reason = (value.get("value") or "").strip()
        if answer_id is not None and reason and deps.questions.answer_exists(answer_id):
            deps.feedback.record_reason(answer_id, body["user"]["id"], reason[:2000])
        # stored first: the modal says "noted" only once it is
        ack(response_action="update", view=_thanks())


def _thanks() -> dict[str, Any]:
    return {
        "type": "modal",
        "title": {"type": "plain_text", "text": "Thanks"},
        "close": {"type": "plain_text", "text": "Close"},
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": FEEDBACK_THANKS}}],
    }

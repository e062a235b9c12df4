"""Feedback on an answer: the 👍 / 👎 buttons (Slack's feedback_buttons or plain buttons), the rating
a click carries, and the "What was wrong?" modal."""

from __future__ import annotations

import re
from typing import Any

from bot.messages import DEFAULT, message
from bot.settings import FeedbackStyle
from bot.slack.render.blocks import Block

ACTION_UP = "feedback_up"  # the plain buttons (QWENBOT_FEEDBACK_STYLE=buttons)
ACTION_DOWN = "feedback_down"
ACTION_FEEDBACK = "feedback"  # Slack's feedback_buttons element: value "up:<answer id>" or "down:<answer id>"
FEEDBACK_VIEW = "feedback_reason"
REASON_BLOCK = "reason"
REASON_ACTION = "reason"


def feedback_block(answer_id: int, style: FeedbackStyle = "native", lang: str = DEFAULT) -> Block:
    helpful, not_helpful = message("button_helpful", lang), message("button_not_helpful", lang)
    if style == "native":
        return {
            "type": "context_actions",
            "block_id": "feedback",
            "elements": [
                {
                    "type": "feedback_buttons",
                    "action_id": ACTION_FEEDBACK,
                    "positive_button": {
                        "text": {"type": "plain_text", "text": helpful},
                        "value": f"up:{answer_id}",
                        "accessibility_label": "This answer was helpful",
                    },
                    "negative_button": {
                        "text": {"type": "plain_text", "text": not_helpful},
                        "value": f"down:{answer_id}",
                        "accessibility_label": "This answer was not helpful",
                    },
                }
            ],
        }
    return {
        "type": "actions",
        "block_id": "feedback",
        "elements": [
            {
                "type": "button",
                "action_id": ACTION_UP,
                "value": str(answer_id),
                "text": {"type": "plain_text", "text": f"👍 {helpful}", "emoji": True},
            },
            {
                "type": "button",
                "action_id": ACTION_DOWN,
                "value": str(answer_id),
                "text": {"type": "plain_text", "text": f"👎 {not_helpful}", "emoji": True},
            },
        ],
    }


def feedback_rating(value: object) -> tuple[str, int] | None:
    """("up" | "down", answer id) from a feedback_buttons value; None for anything else."""
    match = re.fullmatch(r"(up|down):(\d{1,18})", str(value or ""))
    return (match.group(1), int(match.group(2))) if match else None


def feedback_modal(answer_id: int) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": FEEDBACK_VIEW,
        "private_metadata": str(answer_id),
        "title": {"type": "plain_text", "text": "What was wrong?"},
        "submit": {"type": "plain_text", "text": "Send"},
        "close": {"type": "plain_text", "text": "Skip"},
        "blocks": [
            {
                "type": "input",
                "block_id": REASON_BLOCK,
                "optional": True,
                "label": {"type": "plain_text", "text": "Tell us briefly (optional)"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": REASON_ACTION,
                    "multiline": True,
                    "max_length": 500,
                },
            }
        ],
    }

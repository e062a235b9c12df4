"""What the knowledge features show in Slack: "Still need help?" under answers, the escalation post
(the one message in which the bot mentions anyone: the scope's expert group), the "Save as answer"
offer and its modal, the saved answer's notice with its remove button, and the private answer's
"Share in channel" button."""

from __future__ import annotations

import json
from typing import Any

from bot.messages import DEFAULT, message
from bot.slack import mrkdwn
from bot.slack.render.blocks import Block, Message, plain_text, section

ACTION_ESCALATE = "escalate"  # value: the answer id
ACTION_SAVE_OFFER = "learned_offer"  # value: "<channel> <thread ts>"
ACTION_LEARNED_REMOVE = "learned_remove"  # value: the learned answer's id
ACTION_SHARE = "share_answer"  # value: the private answer's id
LEARNED_VIEW = "learned_save"
QUESTION_BLOCK, QUESTION_ACTION = "question", "question"
ANSWER_BLOCK, ANSWER_ACTION = "answer", "answer"

ESCALATION_TEXT = "An expert's help is asked for in this thread"  # also marks the escalation in the thread
ESCALATED_THANKS = (
    "Thanks for asking: I've called in this channel's experts, here in the thread. When one of them "
    "replies, they can save the answer, and I'll answer it myself next time."
)
ALREADY_ESCALATED = "The experts were called into this thread already."
NO_EXPERTS = "No experts are set up for this channel (ask an admin to add `experts` to its scope)."
NOT_AN_EXPERT = (
    "Only the people who replied in this thread after the experts were called, or a qwenbot admin, can save it."
)
NOTHING_TO_SAVE = "I see no expert reply in this thread yet to save."
PRIVATE_CHANNEL = (
    "I keep no answers from a private channel the channel scopes file does not list: an admin can list it, "
    "which says who may read what is saved here."
)


def _button(action: str, value: str, text: str, block_id: str, style: str | None = None) -> Block:
    button: Block = {
        "type": "button",
        "action_id": action,
        "value": value,
        "text": {"type": "plain_text", "text": text, "emoji": True},
    }
    if style:
        button["style"] = style
    return {"type": "actions", "block_id": block_id, "elements": [button]}


def escalate_block(answer_id: int, lang: str = DEFAULT) -> Block:
    return _button(ACTION_ESCALATE, str(answer_id), message("button_still_need_help", lang), "escalate")


def escalation_message(group: str, question: str) -> Message:
    """The post that calls the scope's expert group into the thread."""
    text = (
        f"<!subteam^{group}> could one of you help here? The docs did not settle this question:\n"
        f"> {mrkdwn.escape(plain_text(question, 1000))}\n"
        "Reply in this thread; you can then save your reply as an answer I cite next time."
    )
    return Message(text=ESCALATION_TEXT, blocks=[section(text)])


def save_offer_message(channel: str, thread_ts: str) -> Message:
    text = (
        "An expert replied. Experts and admins: save the reply as an answer, and I'll answer this "
        "question from it next time (in this channel's scope), citing you and this thread."
    )
    return Message(
        text="Save the expert's reply as an answer",
        blocks=[section(text), _button(ACTION_SAVE_OFFER, f"{channel} {thread_ts}", "Save as answer", "learned_offer")],
    )


def save_modal(channel: str, thread_ts: str, author: str, question: str, answer: str) -> dict[str, Any]:
    """The question and the expert's reply, both editable before they are saved."""

    def field(block: str, action: str, label: str, value: str, limit: int) -> Block:
        return {
            "type": "input",
            "block_id": block,
            "label": {"type": "plain_text", "text": label},
            "element": {
                "type": "plain_text_input",
                "action_id": action,
                "multiline": True,
                "max_length": limit,
                "initial_value": value[:limit],
            },
        }

    return {
        "type": "modal",
        "callback_id": LEARNED_VIEW,
        "private_metadata": json.dumps({"channel": channel, "thread_ts": thread_ts, "author": author}),
        "title": {"type": "plain_text", "text": "Save as answer"},
        "submit": {"type": "plain_text", "text": "Save"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            field(QUESTION_BLOCK, QUESTION_ACTION, "Question", question, 300),
            field(ANSWER_BLOCK, ANSWER_ACTION, "Answer", answer, 3000),
        ],
    }


def saved_message(learned_id: int, question: str, author_name: str) -> Message:
    text = (
        f"Saved as an answer (#{learned_id}), answered by {mrkdwn.escape(plain_text(author_name, 80))}: "
        f"_{mrkdwn.escape(plain_text(question, 300))}_\nI'll cite it in this channel's scope from now on."
    )
    return Message(
        text="Saved as an answer",
        blocks=[section(text), _button(ACTION_LEARNED_REMOVE, str(learned_id), "Remove", "learned_remove", "danger")],
    )


def removed_message(learned_id: int) -> Message:
    return Message(text="Removed", blocks=[section(f"Saved answer #{learned_id} removed: I no longer cite it.")])


def share_block(private_id: int) -> Block:
    return _button(ACTION_SHARE, str(private_id), "Share in channel", "share", "primary")


def shared_header(name: str | None, question: str) -> Block:
    who = mrkdwn.escape(plain_text(name, 80)) if name else "Someone"
    return section(f"{who} shared an answer to their question:\n> {mrkdwn.escape(plain_text(question, 1000))}")

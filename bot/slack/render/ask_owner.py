"""Asking an owner: the button under an answer not found in the docs, the question posted to the
scope's owners' channel, and the asker's notice."""

from __future__ import annotations

from bot.slack import mrkdwn
from bot.slack.render.blocks import Block, Message, plain_text, section

ACTION_ASK_OWNER = "ask_owner"  # value: the answer id


def ask_owner_block(answer_id: int) -> Block:
    return {
        "type": "actions",
        "block_id": "ask_owner",
        "elements": [
            {
                "type": "button",
                "action_id": ACTION_ASK_OWNER,
                "value": str(answer_id),
                "text": {"type": "plain_text", "text": "Ask an owner"},
            }
        ],
    }


def ask_owner_message(question: str, channel: str, permalink: str | None) -> Message:
    """The question posted to the scope's owners' channel. Where it was asked is a channel link (no
    one is pinged); the asker's thread is a link when it is in a channel (a DM's is private)."""
    lines = [f"*A question the docs did not answer:*\n> {mrkdwn.escape(plain_text(question, 2000))}"]
    if channel.startswith(("C", "G")):
        thread = mrkdwn.link(permalink, "the thread") if permalink else None
        lines.append(f"Asked in <#{channel}>" + (f": reply in {thread}." if thread else "."))
    else:
        lines.append("Asked in a direct message with the bot.")
    lines.append("If the docs should cover this, please add it: the bot answers from them once indexed.")
    return Message(text="A question the docs did not answer", blocks=[section("\n".join(lines))])


def asked_owner_notice(ask_channel: str) -> str:
    return f"I've posted your question in <#{ask_channel}> for the doc owners."

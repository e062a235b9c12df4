"""The answer as Slack messages: its Markdown split within Slack's limits, the last message carrying
the trailer (sources, "Ask an owner", feedback)."""

from __future__ import annotations

from datetime import date

from bot.answer.records import Answer
from bot.messages import message
from bot.settings import FeedbackStyle
from bot.slack import mrkdwn
from bot.slack.render.ask_owner import ask_owner_block
from bot.slack.render.blocks import MARKDOWN_LIMIT, MESSAGE_BLOCKS_BUDGET, Block, Message, blocks_size, markdown_block
from bot.slack.render.feedback import feedback_block
from bot.slack.render.knowledge import escalate_block
from bot.slack.render.sources import sources_blocks


def split_markdown(text: str, limit: int = MARKDOWN_LIMIT) -> list[str]:
    """Split Markdown into parts of at most `limit` characters, at paragraph, line or word breaks.

    Nothing is dropped: joining the parts gives the text back, except that a code block cut in two
    is closed at the end of one part and reopened at the start of the next.
    """
    parts: list[str] = []
    rest = text
    while len(rest) > limit:
        budget = limit - 8  # room to close a code fence
        window = rest[:budget]
        cut = -1
        for sep in ("\n\n", "\n", " "):
            at = window.rfind(sep)
            if at >= budget // 2:
                cut = at + len(sep)
                break
        if cut == -1:
            cut = budget
        head, rest = rest[:cut], rest[cut:]
        fence = _open_fence(head)
        if fence is not None:
            head += ("" if head.endswith("\n") else "\n") + "```"
            rest = fence + "\n" + rest
        parts.append(head)
    parts.append(rest)
    return parts


def _open_fence(text: str) -> str | None:
    """The opening line of a ``` code block left open at the end of `text`, if any."""
    opened: str | None = None
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            opened = None if opened is not None else line.strip()
    return opened


def answer_text(answer: Answer) -> str:
    """The answer as it is shown: neutralised Markdown, never empty."""
    text = mrkdwn.neutralize(answer.text.strip())
    if text:
        return text
    return message("nothing_found", answer.lang) if answer.mode == "not_found" else "…"


def trailer_blocks(
    answer: Answer,
    answer_id: int,
    stale_days: int,
    today: date | None = None,
    allow_mailto: bool = False,
    *,
    feedback_style: FeedbackStyle = "native",
    ask_owner: bool = False,
    escalate: bool = False,
) -> list[Block]:
    """What follows the answer text in its last message: sources, "Ask an owner" (an answer not found
    in the docs, where the scope has an owners' channel), "Still need help?" (where the scope has
    experts), then the feedback. (The pipeline's text itself says plainly when it is quoted passages or
    found nothing.)"""
    blocks = sources_blocks(answer, stale_days, today or date.today(), allow_mailto)
    if ask_owner and answer.mode == "not_found":
        blocks.append(ask_owner_block(answer_id))
    if escalate:
        blocks.append(escalate_block(answer_id, answer.lang))
    return [*blocks, feedback_block(answer_id, feedback_style, answer.lang)]


def answer_messages(
    answer: Answer,
    answer_id: int,
    stale_days: int,
    today: date | None = None,
    allow_mailto: bool = False,
    *,
    feedback_style: FeedbackStyle = "native",
    ask_owner: bool = False,
    escalate: bool = False,
) -> list[Message]:
    """The whole answer as the messages to post, in order; the last carries sources and buttons."""
    parts = split_markdown(answer_text(answer))
    messages = [Message(text=mrkdwn.escape(p), blocks=[markdown_block(p)]) for p in parts]
    trailer = trailer_blocks(
        answer,
        answer_id,
        stale_days,
        today,
        allow_mailto,
        feedback_style=feedback_style,
        ask_owner=ask_owner,
        escalate=escalate,
    )
    last = messages[-1]
    if len(parts[-1]) + blocks_size(trailer) <= MESSAGE_BLOCKS_BUDGET:
        messages[-1] = Message(text=last.text, blocks=last.blocks + trailer)
    else:
        messages.append(Message(text="Sources and feedback", blocks=trailer))
    return messages

"""Answer -> Slack messages: Markdown split within Slack's limits, sources, feedback buttons; the
task steps streamed while an answer is written; "Ask an owner" posts (the knowledge-gap digest:
bot/gaps/render.py).

All text that came from the model or the docs goes through bot.slack.mrkdwn before it is placed here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from bot.answer.records import Answer, Source
from bot.settings import FeedbackStyle
from bot.slack import mrkdwn

# Slack: markdown blocks take 12,000 characters per message in total, and messages are refused a
# little above 13,000 characters of blocks in all; keep room for the sources and buttons.
MARKDOWN_LIMIT = 11_000
MESSAGE_BLOCKS_BUDGET = 12_500
SECTION_LIMIT = 3_000

ACTION_UP = "feedback_up"  # the plain buttons (QWENBOT_FEEDBACK_STYLE=buttons)
ACTION_DOWN = "feedback_down"
ACTION_FEEDBACK = "feedback"  # Slack's feedback_buttons element: value "up:<answer id>" or "down:<answer id>"
ACTION_ASK_OWNER = "ask_owner"  # value: the answer id
FEEDBACK_VIEW = "feedback_reason"
REASON_BLOCK = "reason"
REASON_ACTION = "reason"

Block = dict[str, Any]


@dataclass(frozen=True)
class Message:
    text: str  # mrkdwn: what notifications and clients without blocks show
    blocks: list[Block]


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
    return "I couldn't find anything in the docs that answers this." if answer.mode == "not_found" else "…"


def source_line(source: Source, stale_days: int, today: date, allow_mailto: bool = False) -> str:
    # A url from front matter is untrusted: one that is no web address ("!here", "@U1",
    # "javascript:...") is dropped, and the title and path are shown instead.
    name = mrkdwn.link(source.url, source.title or source.path, allow_mailto) if source.url else None
    if name is None:
        name = (
            f"*{mrkdwn.escape(source.title)}* `{mrkdwn.escape(source.path)}`"
            if source.title
            else f"`{mrkdwn.escape(source.path)}`"
        )
    line = f"[{source.n}] {name}"
    if source.archived:
        line += " _(archived)_"
    if source.heading_path:
        line += f" · {mrkdwn.escape(source.heading_path)}"
    if source.page:
        line += f" · p. {source.page}"
    if source.updated:
        line += f" · updated {mrkdwn.escape(source.updated)}"
        if is_stale(source.updated, stale_days, today):
            line += f" :warning: _older than {stale_days} days, may be out of date_"
    # one line: a field with line breaks (a heading, a path) must not start a line of its own, where
    # `[ref]: url` or a quote would be read as markup
    return " ".join(line.split())


def is_stale(updated: str, stale_days: int, today: date) -> bool:
    try:
        when = date.fromisoformat(updated[:10])
    except ValueError:
        return False
    return (today - when).days > stale_days


def sources_blocks(answer: Answer, stale_days: int, today: date, allow_mailto: bool = False) -> list[Block]:
    if not answer.sources:
        return []
    heading = "*Sources*" if answer.cited else "*Closest documents*"
    blocks: list[Block] = []
    current = heading
    for source in answer.sources:
        line = source_line(source, stale_days, today, allow_mailto)[: SECTION_LIMIT - 1]
        if len(current) + 1 + len(line) > SECTION_LIMIT:
            blocks.append(section(current))
            current = line
        else:
            current += "\n" + line
    blocks.append(section(current))
    return blocks


def feedback_block(answer_id: int, style: FeedbackStyle = "native") -> Block:
    if style == "native":
        return {
            "type": "context_actions",
            "block_id": "feedback",
            "elements": [
                {
                    "type": "feedback_buttons",
                    "action_id": ACTION_FEEDBACK,
                    "positive_button": {
                        "text": {"type": "plain_text", "text": "Helpful"},
                        "value": f"up:{answer_id}",
                        "accessibility_label": "This answer was helpful",
                    },
                    "negative_button": {
                        "text": {"type": "plain_text", "text": "Not helpful"},
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
                "text": {"type": "plain_text", "text": "👍 Helpful", "emoji": True},
            },
            {
                "type": "button",
                "action_id": ACTION_DOWN,
                "value": str(answer_id),
                "text": {"type": "plain_text", "text": "👎 Not helpful", "emoji": True},
            },
        ],
    }


def feedback_rating(value: object) -> tuple[str, int] | None:
    """("up" | "down", answer id) from a feedback_buttons value; None for anything else."""
    match = re.fullmatch(r"(up|down):(\d{1,18})", str(value or ""))
    return (match.group(1), int(match.group(2))) if match else None


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


def trailer_blocks(
    answer: Answer,
    answer_id: int,
    stale_days: int,
    today: date | None = None,
    allow_mailto: bool = False,
    *,
    feedback_style: FeedbackStyle = "native",
    ask_owner: bool = False,
) -> list[Block]:
    """What follows the answer text in its last message: sources, "Ask an owner" (an answer not found
    in the docs, where the scope has an owners' channel), then the feedback. (The pipeline's text
    itself says plainly when it is quoted passages or found nothing.)"""
    blocks = sources_blocks(answer, stale_days, today or date.today(), allow_mailto)
    if ask_owner and answer.mode == "not_found":
        blocks.append(ask_owner_block(answer_id))
    return [*blocks, feedback_block(answer_id, feedback_style)]


def answer_messages(
    answer: Answer,
    answer_id: int,
    stale_days: int,
    today: date | None = None,
    allow_mailto: bool = False,
    *,
    feedback_style: FeedbackStyle = "native",
    ask_owner: bool = False,
) -> list[Message]:
    """The whole answer as the messages to post, in order; the last carries sources and buttons."""
    parts = split_markdown(answer_text(answer))
    messages = [Message(text=mrkdwn.escape(p), blocks=[markdown_block(p)]) for p in parts]
    trailer = trailer_blocks(
        answer, answer_id, stale_days, today, allow_mailto, feedback_style=feedback_style, ask_owner=ask_owner
    )
    last = messages[-1]
    if len(parts[-1]) + blocks_size(trailer) <= MESSAGE_BLOCKS_BUDGET:
        messages[-1] = Message(text=last.text, blocks=last.blocks + trailer)
    else:
        messages.append(Message(text="Sources and feedback", blocks=trailer))
    return messages


def markdown_block(text: str) -> Block:
    return {"type": "markdown", "text": text}


def blocks_size(blocks: list[Block]) -> int:
    """Characters of text in blocks, the measure Slack's per-message limits use."""
    total = 0
    for block in blocks:
        text = block.get("text")
        if isinstance(text, dict):
            total += len(text.get("text", ""))
        elif isinstance(text, str):
            total += len(text)
        for element in block.get("elements", []):
            inner = element.get("text")
            total += len(inner.get("text", "") if isinstance(inner, dict) else inner or "")
    return total


def section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


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


# --- task steps, streamed with the answer (chat.startStream task_display_mode=timeline) ---

TaskStatus = Literal["pending", "in_progress", "complete", "error"]
STEP_SEARCH, STEP_READ, STEP_WRITE = "search", "read", "write"
SEARCH_TITLE = "Searching the docs"
READ_TITLE = "Reading"
WRITE_TITLE = "Writing the answer"
NOT_FOUND_TITLE = "Not in the docs"
QUOTING_TITLE = "Model unavailable: quoting the docs"
FAILED_TITLE = "Model unavailable"
MAX_TASK_SOURCES = 5
TASK_TEXT_LIMIT = 150  # characters of a doc title in a step's sources


def task_update(
    task_id: str, title: str, status: TaskStatus, details: str | None = None, sources: Sequence[Source] = ()
) -> Block:
    """A `task_update` chunk. Titles and details are the bot's own words; a source's text is a doc
    title (untrusted: neutralised), and only a safe http(s) url becomes a source."""
    chunk: Block = {"type": "task_update", "id": task_id, "title": title, "status": status}
    if details:
        chunk["details"] = details
    links = []
    for source in sources:
        target = mrkdwn.link_target(source.url) if source.url else None
        if target:
            links.append({"type": "url", "url": target, "text": plain_text(source.title or source.path)})
    if links:
        chunk["sources"] = links[:MAX_TASK_SOURCES]
    return chunk


def plain_text(text: str, limit: int = TASK_TEXT_LIMIT) -> str:
    text = " ".join(mrkdwn.neutralize(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def count_noun(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def found_details(passages: int, documents: int) -> str:
    return f"found {count_noun(passages, 'passage')} in {count_noun(documents, 'document')}"


def reading_details(reranked: bool) -> str:
    return "ranking the passages with the reranker" if reranked else "choosing the passages to answer from"


def outcome_step(answer: Answer) -> tuple[str, str]:
    """The last step's title and details for how the answer ended. A model failure is named in a few
    words, never with the error text (it may name internal hosts)."""
    if answer.mode == "not_found":
        return NOT_FOUND_TITLE, "no passage answers this: the closest documents are listed"
    if answer.mode == "failed":
        return FAILED_TITLE, "the model did not answer and no passage answers clearly: the closest documents are listed"
    if answer.mode == "extractive":
        return QUOTING_TITLE, "the passages that answer, quoted and cited"
    cited = count_noun(len({s.path for s in answer.sources}), "document")
    if answer.truncated:
        return WRITE_TITLE, f"cut off at the answer length limit; cites {cited}"
    if answer.model_error:
        return WRITE_TITLE, f"cut short: the model stopped answering; cites {cited}"
    return WRITE_TITLE, f"cites {cited}"


def outcome_status(answer: Answer) -> TaskStatus:
    """The last step's status: `error` when the answer is incomplete or the model failed with nothing
    quoted, so Slack never shows such an answer as complete."""
    cut = answer.mode == "generated" and (answer.truncated or answer.model_error is not None)
    return "error" if cut or answer.mode == "failed" else "complete"


# --- "Ask an owner" ---


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


def apology(error_id: str) -> str:
    return f"Sorry, something went wrong while answering. Please try again in a moment (error id `{error_id}`)."


def rate_limited(wait_seconds: int) -> str:
    return f"You're asking faster than I can keep up. Please wait about {wait_seconds} s and ask again."


BUSY = "I'm answering too many questions right now. Please ask again in a few minutes."
FEEDBACK_THANKS = "Thanks, noted. Your reason helps the people who keep the docs correct."


def not_enabled() -> str:
    return (
        "I'm not enabled in this channel. Ask an admin to add it to the bot's allowed channels, "
        "or send me a direct message."
    )


HELP = (
    "*Ask me about the docs:* mention me in a channel (`@qwenbot how many vacation days do I get?`) "
    "or send me a direct message. I answer in a thread and cite my sources; reply in the thread to "
    "follow up. Rate the answer with 👍 / 👎.\n"
    "`/qwenbot status`: index size, last indexed, model endpoint and health\n"
    "`/qwenbot reindex`: index new and changed docs now (admins)\n"
    "`/qwenbot help`: this message"
)

"""The task steps streamed with the answer (chat.startStream task_display_mode=timeline): searching,
reading, writing, and how the answer ended."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Literal

from bot.answer.records import Answer, Source
from bot.messages import message
from bot.slack import mrkdwn
from bot.slack.render.blocks import Block, count_noun, plain_text

TaskStatus = Literal["pending", "in_progress", "complete", "error"]
STEP_SEARCH, STEP_READ, STEP_WRITE = "search", "read", "write"
MAX_TASK_SOURCES = 5


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


def found_details(passages: int, documents: int) -> str:
    return f"found {count_noun(passages, 'passage')} in {count_noun(documents, 'document')}"


def reading_details(reranked: bool) -> str:
    return "ranking the passages with the reranker" if reranked else "choosing the passages to answer from"


def outcome_step(answer: Answer) -> tuple[str, str]:
    """The last step's title and details for how the answer ended. A model failure is named in a few
    words, never with the error text (it may name internal hosts)."""
    title = functools.partial(message, lang=answer.lang)
    if answer.mode == "not_found":
        return title("task_not_found"), "no passage answers this: the closest documents are listed"
    if answer.mode == "failed":
        details = "the model did not answer and no passage answers clearly: the closest documents are listed"
        return title("task_failed"), details
    if answer.mode == "extractive":
        return title("task_quoting"), "the passages that answer, quoted and cited"
    cited = count_noun(len({s.path for s in answer.sources}), "document")
    if answer.truncated:
        return title("task_write"), f"cut off at the answer length limit; cites {cited}"
    if answer.model_error:
        return title("task_write"), f"cut short: the model stopped answering; cites {cited}"
    return title("task_write"), f"cites {cited}"


def outcome_status(answer: Answer) -> TaskStatus:
    """The last step's status: `error` when the answer is incomplete or the model failed with nothing
    quoted, so Slack never shows such an answer as complete."""
    cut = answer.mode == "generated" and (answer.truncated or answer.model_error is not None)
    return "error" if cut or answer.mode == "failed" else "complete"

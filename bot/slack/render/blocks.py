"""The records every Slack message is built from, Slack's size limits, and the small block builders
the renderers share (bot/gaps/render.py too)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.slack import mrkdwn

# Slack: markdown blocks take 12,000 characters per message in total, and messages are refused a
# little above 13,000 characters of blocks in all; keep room for the sources and buttons.
MARKDOWN_LIMIT = 11_000
MESSAGE_BLOCKS_BUDGET = 12_500
SECTION_LIMIT = 3_000

Block = dict[str, Any]


@dataclass(frozen=True)
class Message:
    text: str  # mrkdwn: what notifications and clients without blocks show
    blocks: list[Block]


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


TASK_TEXT_LIMIT = 150  # characters of a doc title in a task step's sources: plain_text's default


def plain_text(text: str, limit: int = TASK_TEXT_LIMIT) -> str:
    text = " ".join(mrkdwn.neutralize(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def count_noun(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"

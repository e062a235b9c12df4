"""Answers made without the model: "not in the docs" with the nearest documents, quoted passages, and
the reply when the configured model failed and no passage answers clearly enough to quote."""

from __future__ import annotations

from collections.abc import Sequence

from bot.answer.prompts import excerpt, number_by_document
from bot.answer.records import Answer
from bot.messages import DEFAULT, message
from retrieval.models import Hit

EXTRACTIVE_PASSAGES = 3
_EXTRACTIVE_CHARS = 600
_NEAREST_DOCS = 3


def not_found_answer(hits: Sequence[Hit], lang: str = DEFAULT) -> Answer:
    nearest = [s.to_source() for s in number_by_document(hits)[:_NEAREST_DOCS]]
    text = message("not_found", lang)
    if nearest:
        text += " " + message("not_found_nearest", lang)
    return Answer(text=text, mode="not_found", sources=nearest, lang=lang)


def failed_answer(hits: Sequence[Hit], reason: str, lang: str = DEFAULT) -> Answer:
    """The configured model failed, and no passage answers clearly enough to quote: said as a failure
    (the docs may well hold the answer), with the nearest documents. Never recorded as a gap."""
    nearest = [s.to_source() for s in number_by_document(hits)[:_NEAREST_DOCS]]
    text = message("failed", lang)
    if nearest:
        text += " " + message("failed_nearest", lang)
    return Answer(text=text, mode="failed", sources=nearest, model_error=reason, lang=lang)


def extractive_answer(passages: Sequence[Hit], reason: str) -> Answer:
    """`passages` quoted and cited by document number, labelled as not written by the model. The
    sources are exactly the quoted passages' documents."""
    numbered = number_by_document(passages)
    number = {s.hits[0].path: s.n for s in numbered}
    blocks = []
    for hit in passages:
        quote = _quote(hit.text, _EXTRACTIVE_CHARS)
        where = f"{hit.title} › {hit.heading_path}" if hit.heading_path and hit.heading_path != hit.title else hit.title
        archived = " (archived)" if hit.archived else ""
        blocks.append(f"{quote}\n— _{where}{archived}_ [{number[hit.path]}]")
    text = "**Model unavailable**, so here is what the docs say, quoted as written:\n\n"
    text += "\n\n".join(blocks) if blocks else "(no matching passages)"
    return Answer(text=text, mode="extractive", sources=[s.to_source() for s in numbered], model_error=reason)


def _quote(text: str, limit: int) -> str:
    """A Markdown block quote of the passage's start, its lines (lists, tables) kept."""
    lines = [line.rstrip() for line in text.strip().splitlines() if line.strip()]
    kept: list[str] = []
    used = 0
    for line in lines:
        if used + len(line) > limit:
            kept.append(excerpt(line, max(40, limit - used)) if not kept else "…")
            break
        kept.append(line)
        used += len(line)
    return "\n".join(f"> {line}" for line in kept)

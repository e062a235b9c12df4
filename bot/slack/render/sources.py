"""The sources under an answer: one line per document (a link only to a safe web address), stale
ones flagged, in sections within Slack's limit."""

from __future__ import annotations

from datetime import date

from bot.answer.records import Answer, Source
from bot.slack import mrkdwn
from bot.slack.render.blocks import SECTION_LIMIT, Block, section


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

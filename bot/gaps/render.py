"""The knowledge-gap digest as Slack messages: one section per group of similar questions, each with
a "Mark as handled" button. Text from questions and documents is untrusted: neutralised here."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from bot.gaps.report import GapGroup, GapReport
from bot.knowledge.summary import summary_lines
from bot.slack import mrkdwn
from bot.slack.render.blocks import SECTION_LIMIT, Block, Message, count_noun, plain_text, section

ACTION_GAP_HANDLED = "gap_handled"  # value: the digest group id
MAX_DIGEST_GROUPS = 15  # 2 blocks each, well under Slack's 50; the rest: `qwenbot gaps`
MAX_WORDINGS = 3
MAX_REASONS = 3
MAX_DIGEST_DOCS = 3
_WORDING_LIMIT = 200


def owner_text(owner: str, owner_groups: dict[str, str]) -> str:
    """A doc owner as shown: their name (from front matter: untrusted, escaped) and, when the scopes
    file maps the name to a Slack user group, that group tagged. The only mention the bot makes on
    purpose, and it comes from configuration alone."""
    name = mrkdwn.escape(owner)
    group = owner_groups.get(owner.strip().casefold())
    return f"{name} <!subteam^{group}>" if group else name


def _quote(text: str) -> str:
    return "“" + mrkdwn.escape(plain_text(text, _WORDING_LIMIT)) + "”"


def gap_group_text(group: GapGroup, owner_groups: dict[str, str]) -> str:
    lines = [f"*{group.count}×* {_quote(group.example)}"]
    lines.append(f"_asked in_ <#{group.channel}>" if group.channel else "_asked in direct messages_")
    others = [q for q in group.wordings if q != group.example][: MAX_WORDINGS - 1]
    if others:
        lines.append("_also asked as_ " + ", ".join(_quote(q) for q in others))
    outcome = []
    if group.not_found:
        outcome.append(f"{group.not_found} not in the docs")
    if group.rated_down:
        outcome.append(f"{group.rated_down} rated 👎")
    lines.append(" · ".join(outcome))
    lines.extend(f"> {mrkdwn.escape(plain_text(r, _WORDING_LIMIT))}" for r in group.reasons[:MAX_REASONS])
    docs = []
    for doc in group.documents[:MAX_DIGEST_DOCS]:
        name = (mrkdwn.link(doc.url, doc.title or doc.path) if doc.url else None) or f"`{mrkdwn.escape(doc.path)}`"
        docs.append(name + (f" (owner: {owner_text(doc.owner, owner_groups)})" if doc.owner else ""))
    lines.append("Nearest docs: " + ("; ".join(docs) if docs else "none found"))
    return "\n".join(lines)[:SECTION_LIMIT]


def digest_message(report: GapReport, group_ids: Sequence[int], owner_groups: dict[str, str]) -> Message:
    """The digest: one section per group of similar questions, each with a "Mark as handled" button
    (its value: `group_ids[i]`, the group as stored)."""
    period = f"{_day(report.since)} to {_day(report.until)}"
    heading = (
        f"*Knowledge gaps, {period}:* {count_noun(report.total, 'question')} the docs did not answer "
        f"or that were rated 👎, in {count_noun(len(report.groups), 'group')}. These are the docs to write next."
    )
    blocks: list[Block] = [section(heading)]
    for group, group_id in zip(report.groups[:MAX_DIGEST_GROUPS], group_ids, strict=False):
        blocks.append(section(gap_group_text(group, owner_groups)))
        blocks.append(
            {
                "type": "actions",
                "block_id": f"gap:{group_id}",
                "elements": [
                    {
                        "type": "button",
                        "action_id": ACTION_GAP_HANDLED,
                        "value": str(group_id),
                        "text": {"type": "plain_text", "text": "Mark as handled"},
                    }
                ],
            }
        )
    hidden = len(report.groups) - MAX_DIGEST_GROUPS
    if hidden > 0:
        blocks.append(section(f"…and {count_noun(hidden, 'more group')}: run `qwenbot gaps` for the whole list."))
    learned = summary_lines(report.knowledge)
    if learned:  # people's text: quoted and escaped, never a mention
        blocks.append(
            section("*What the bot learned:* " + "\n".join(mrkdwn.escape(plain_text(x, 300)) for x in learned))
        )
    return Message(text=f"Knowledge gaps, {period}: {count_noun(report.total, 'question')}", blocks=blocks)


def _day(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")


def handled_blocks(blocks: list[Block], group_id: int) -> list[Block]:
    """The digest's blocks with one group's button replaced by a note that it was handled."""
    note: Block = {
        "type": "context",
        "block_id": f"gap:{group_id}",
        "elements": [{"type": "mrkdwn", "text": ":white_check_mark: Marked as handled"}],
    }
    return [note if b.get("block_id") == f"gap:{group_id}" else b for b in blocks]

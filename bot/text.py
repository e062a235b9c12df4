"""Small text helpers shared across the bot."""

from __future__ import annotations


def short(text: str, limit: int = 200) -> str:
    """`text` on one line, cut to `limit` characters with an ellipsis."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def int_or_none(value: object) -> int | None:
    """`value` (a Slack payload string, say) as an int; None when it is not one."""
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None

"""Small text helpers shared across the bot."""

from __future__ import annotations

import urllib.parse


def short(text: str, limit: int = 200) -> str:
    """`text` on one line, cut to `limit` characters with an ellipsis."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def int_or_none(value: object) -> int | None:
    """`value` (a Slack payload string, say) as an int; None when it is not one."""
    if not isinstance(value, str | int | float):
        return None
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return None


def redact_url(url: str) -> str:
    """`url` as it may be shown (doctor, status, logs): without `user:password@`, query or fragment,
    which is where credentials and API keys sit in a URL."""
    try:
        parts = urllib.parse.urlsplit(url.strip())
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # not a URL at all (a bad port, say): nothing of it is shown
        return "(unparsable URL)"
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    return urllib.parse.urlunsplit((parts.scheme, host + port, parts.path, "", ""))

"""Make untrusted text (model output, doc titles and passages) inert before it reaches Slack.

Slack reads `<...>` as control sequences: `<!channel>` pings a whole channel, `<@U123>` a person,
`<!subteam^S1>` a user group, and `<url|label>` hides where a link goes. Text the bot did not write
must never do any of that, so every such sequence is rewritten into plain, visible text.
"""

from __future__ import annotations

import re

# U+2060 WORD JOINER: invisible, but it stops "@here" or "@channel" being read as a mention by any
# client that still expands bare names.
_JOIN = "\u2060"

# <!channel>, <!here|here>, <@U123|bob>, <#C1|general>, <!subteam^S1|@team>, <https://x|label>,
# <mailto:a@b.c>, <!date^...|fallback>
_CONTROL = re.compile(r"<([!@#][^<>]*|[a-zA-Z][a-zA-Z0-9+.-]*:[^<>\s|]*(?:\|[^<>]*)?)>")
_BARE_BROADCAST = re.compile(r"(?<![\w.])@(channel|here|everyone)\b(?!\.\w)", re.IGNORECASE)  # not in emails


def _inert(match: re.Match[str]) -> str:
    body = match.group(1)
    target, _, label = body.partition("|")
    if body[0] == "!":
        name = target[1:].split("^", 1)[0]  # channel / here / everyone / subteam / date
        shown = label.lstrip("@") if label else name
        return f"@{_JOIN}{shown}" if name in {"channel", "here", "everyone", "subteam"} else (label or name)
    if body[0] == "@":
        return f"@{_JOIN}{label or target[1:]}"
    if body[0] == "#":
        return f"#{label or target[1:]}"
    # a link: show both the label and where it really goes
    return f"{label} ({target})" if label and label != target else target


def neutralize(text: str) -> str:
    """Rewrite Slack control sequences and broadcast words into harmless visible text.

    The result is still Markdown: use it for `markdown` blocks and streamed text. Code such as
    `List<String>` or `<div>` is left alone; only sequences Slack would act on change.
    """
    text = _CONTROL.sub(_inert, text)
    return _BARE_BROADCAST.sub(lambda m: f"@{_JOIN}{m.group(1)}", text)


def escape(text: str) -> str:
    """Untrusted text for an mrkdwn field (section text, top-level `text`): neutralised, then
    `&`, `<`, `>` escaped as Slack asks, so nothing left can form a control sequence."""
    return neutralize(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def unescape(text: str) -> str:
    """Undo Slack's escaping of message text read back from the API (thread history)."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def link(url: str, label: str) -> str:
    """An mrkdwn link the bot means to make: the label escaped, the url stripped of `|<>`."""
    safe_url = re.sub(r"[|<>\s]", "", url)
    return f"<{safe_url}|{escape(label)}>"


def safe_prefix_length(text: str) -> int:
    """How much of a growing (streamed) text can be neutralised now without a later chunk changing it.

    Stops before an unclosed `<...` (unless it is too long to ever close into a control sequence)
    and before an `@` that may yet become `@here`.
    """
    cut = len(text)
    while True:
        new = cut
        open_at = text.rfind("<", 0, new)
        if open_at != -1 and ">" not in text[open_at:new] and new - open_at < 512:
            new = open_at
        at = text.rfind("@", max(0, new - 12), new)
        if at != -1:
            new = at
        if new == cut:
            return cut
        cut = new

"""Make untrusted text (model output, doc titles and passages) inert before it reaches Slack.

Slack reads `<...>` as control sequences: `<!channel>` pings a whole channel, `<@U123>` a person,
`<!subteam^S1>` a user group, and `<url|label>` hides where a link goes. Markdown (`markdown` blocks)
adds `[label](url)`, `![alt](url)` and `[label][ref]` with a `[ref]: url` definition. Text the bot did not
write must never do any of that, so every such sequence is rewritten into plain, visible text that
shows the real target. Invisible characters next to that punctuation (`<\u200b!here>`) and fullwidth
lookalikes (`＜!channel＞`) are normalised first, so they cannot smuggle a sequence past the rewrite.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

# U+2060 WORD JOINER: invisible, but it stops "@here" or "@channel" being read as a mention by any
# client that still expands bare names.
_JOIN = "\u2060"

# <!channel>, <!here|here>, <@U123|bob>, <#C1|general>, <!subteam^S1|@team>, <https://x|label>,
# <mailto:a@b.c>, <!date^...|fallback>
_CONTROL = re.compile(r"<([!@#][^<>]*|[a-zA-Z][a-zA-Z0-9+.-]*:[^<>\s|]*(?:\|[^<>]*)?)>")
# what is left of a control sequence after nesting defeated the rewrite ("<a:b|<!here>>")
_CONTROL_START = re.compile(r"<(?=[!@#]|[a-zA-Z][a-zA-Z0-9+.-]*:)")
_BARE_BROADCAST = re.compile(r"(?<![\w.])@(channel|here|everyone)\b(?!\.\w)", re.IGNORECASE)  # not in emails
# [label](target "title"), the label without brackets (and bounded: a line of "[" stays linear); the
# target may hold one level of parentheses
_MD_LINK = re.compile(
    r"\[([^\[\]\n]{0,500})\]\(\s*(<[^<>\n]*>|[^\s()]*(?:\([^\s()]*\)[^\s()]*)*)"
    r"(?:\s+(?:\"[^\"\n]*\"|'[^'\n]*'|\([^()\n]*\)))?\s*\)"
)
# Zero-width and direction marks are invisible, so they are dropped where they touch markup
# punctuation; elsewhere (emoji sequences, Persian or Indic words) they are left as written.
_INVISIBLE = "\u00ad\u034f\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff"
_MARKUP = "<>@!#^|\\[\\]():＜＞﹤﹥＠﹫"
_HIDDEN = re.compile(rf"[{_INVISIBLE}]+(?=[{_MARKUP}])|(?<=[{_MARKUP}])[{_INVISIBLE}]+")
_LOOKALIKES = str.maketrans({"＜": "<", "＞": ">", "﹤": "<", "﹥": ">", "＠": "@", "﹫": "@"})
_PASSES = 3  # rewrites of nested sequences before what is left is defused outright


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
    """Rewrite Slack control sequences, Markdown links and broadcast words into harmless visible text.

    The result is still Markdown: use it for `markdown` blocks and streamed text. Code such as
    `List<String>` or `<div>` is left alone; only sequences Slack would act on change (also inside
    code spans, which not every Slack client treats as code).
    """
    text = _HIDDEN.sub("", text).translate(_LOOKALIKES)
    for _ in range(_PASSES):
        text, count = _CONTROL.subn(_inert, text)
        if not count:
            break
    text = _CONTROL_START.sub("\u2039", text)  # a single angle quote: looks alike, means nothing
    text = _MD_LINK.sub(_md_inert, text).replace("](", "] (")  # the second catches nested labels
    # "[ref]: url" makes [label][ref] a link. A definition may sit in a block quote, a list item or
    # any mix of them, and its label may span lines, but it always needs "]" then ":" at once; a
    # space between them defuses every one, wherever it is (and stays a stable prefix when streamed).
    text = text.replace("]:", "] :")
    return _BARE_BROADCAST.sub(lambda m: f"@{_JOIN}{m.group(1)}", text)


def _md_inert(match: re.Match[str]) -> str:
    label, target = match.group(1).strip(), match.group(2).strip("<>")
    return f"{label} ({target})" if label and label != target else target


def escape(text: str) -> str:
    """Untrusted text for an mrkdwn field (section text, top-level `text`): neutralised, then
    `&`, `<`, `>` escaped as Slack asks, so nothing left can form a control sequence."""
    return neutralize(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def unescape(text: str) -> str:
    """Undo Slack's escaping of message text read back from the API (thread history)."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def link_target(url: str, allow_mailto: bool = False) -> str | None:
    """`url` when the bot may make it a link: an http(s) address with a host (or, when allowed, a
    mailto: address), with nothing that could end or bend an mrkdwn link. None for anything else."""
    url = url.strip()
    if re.search(rf"[|<>\s\x00-\x1f\x7f{_INVISIBLE}]", url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() in ("http", "https") and parts.hostname:
        return url
    if allow_mailto and parts.scheme.lower() == "mailto" and "@" in parts.path:
        return url
    return None


def link(url: str, label: str, allow_mailto: bool = False) -> str | None:
    """An mrkdwn link the bot means to make, the label escaped; None when `url` is no safe target
    (see link_target): then the caller shows the label alone."""
    target = link_target(url, allow_mailto)
    return f"<{target}|{escape(label)}>" if target else None


def safe_prefix_length(text: str) -> int:
    """How much of a growing (streamed) text can be neutralised now without a later chunk changing it.

    Stops before an unclosed `<...` (unless it is too long to ever close into a control sequence),
    before an `@` that may yet become `@here`, before a `[` that may yet become a Markdown link, and
    before trailing invisible characters (dropped once markup follows them).
    """
    cut = len(text)
    # Held back at most this far: a pathological text ("[[[[...") is then neutralised as it stands,
    # which is always safe; only its streamed prefix may differ from the final text.
    floor = max(0, cut - 2048)
    while True:
        new = cut
        while new and re.match(rf"[{_INVISIBLE}]", text[new - 1]):
            new -= 1
        open_at = max(text.rfind(c, max(0, new - 512), new) for c in "<＜﹤")
        if open_at != -1 and not any(c in text[open_at:new] for c in ">＞﹥"):
            new = open_at
        at = max(text.rfind(c, max(0, new - 12), new) for c in "@＠﹫")
        if at != -1:
            new = at
        bracket = text.rfind("[", max(0, new - 512), new)
        if bracket != -1 and _link_may_form(text[bracket:new]):
            new = bracket
        if new == cut or new <= floor:
            return max(new, floor)
        cut = new


def _link_may_form(tail: str) -> bool:
    """Whether `tail`, from a `[` to the end of the text so far, may still become a Markdown link."""
    close = tail.find("]")
    if close == -1:
        return "\n" not in tail  # the label is still being written
    after = tail[close + 1 :]
    return after == "" or (after.startswith("(") and after.count("(") > after.count(")"))  # target still open

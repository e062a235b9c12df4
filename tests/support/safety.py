"""What must never reach Slack: pings and links to anything but http(s). The checks the safety tests
run on everything the bot sent, and a docs folder whose front matter and text are hostile."""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path

from retrieval.config import IndexConfig
from retrieval.embeddings import Embedder
from retrieval.indexer import Indexer
from support.fake_slack import FakeSlack

# What a client could read as "<", ">" or "@" once it normalises lookalikes.
_LOOKALIKES = str.maketrans({"＜": "<", "＞": ">", "﹤": "<", "﹥": ">", "＠": "@", "﹫": "@"})
_CONTROL = re.compile(r"<[!@#][^<>]*>")
_AUTOLINK = re.compile(r"<([a-zA-Z][a-zA-Z0-9+.-]*):[^<>]*>")
_BROADCAST = re.compile(r"(?<![\w.])@(channel|here|everyone)\b(?!\.\w)", re.IGNORECASE)
_MD_LINK = re.compile(r"\]\(")
_MD_DEFINITION = re.compile(r"^ {0,3}\[[^\]\n]+\]:", re.M)
_MENTION = re.compile(r"<[!@]")
JOIN = "\u2060"

# a document each, whose front matter url is hostile (see evil_docs_index)
EVIL_URLS = {
    "here.md": "!here",
    "alice.md": "@U0ALICE",
    "admins.md": "<!subteam^S0ADMINS>",
    "script.md": "javascript:alert(1)",
}


def dangers(text: str, schemes: tuple[str, ...] = ("http", "https")) -> list[str]:
    """Everything in `text` that Slack (or a client that drops invisible characters and maps
    lookalikes) could turn into a ping or a link to somewhere other than an http(s) address."""
    visible = "".join(c for c in text if unicodedata.category(c) != "Cf").translate(_LOOKALIKES)
    found = [m.group(0) for m in _CONTROL.finditer(visible)]
    found += [m.group(0) for m in _AUTOLINK.finditer(visible) if m.group(1).lower() not in schemes]
    found += [m.group(0) for m in _MD_LINK.finditer(visible)]
    found += [m.group(0) for m in _MD_DEFINITION.finditer(visible)]
    # U+2060 after "@" is the bot's own guard against a bare broadcast word
    joined = "".join(c for c in text if c == JOIN or unicodedata.category(c) != "Cf").translate(_LOOKALIKES)
    found += [m.group(0) for m in _BROADCAST.finditer(joined)]
    return found


def sent_strings(value: object) -> list[str]:
    """Every string in what the bot sent (JSON-encoded block lists included)."""
    if isinstance(value, str):
        try:
            return sent_strings(json.loads(value)) if value[:1] in "[{" else [value]
        except ValueError:
            return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in sent_strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in sent_strings(v)]
    return []


def assert_no_mentions(slack: FakeSlack, allowed_groups: tuple[str, ...] = ()) -> None:
    """Nothing the bot sent pings anyone, except the configured owner groups, tagged on purpose."""
    for call in slack.calls:
        text = json.dumps(call.args, ensure_ascii=False)
        for group in allowed_groups:
            text = text.replace(f"<!subteam^{group}>", "")
        assert not _MENTION.search(text), (call.method, text)
        assert "@here" not in text and "@channel" not in text


def evil_docs_index(docs: Path, index_dir: Path, embedder: Embedder) -> Path:
    """Vacation docs whose front matter and text are hostile (one per EVIL_URLS entry), written to
    `docs` and indexed into `index_dir`; returns `index_dir`."""
    for name, url in EVIL_URLS.items():
        (docs / name).write_text(
            f"---\ntitle: Vacation days policy\nurl: {json.dumps(url)}\nowner: <!channel>\n---\n\n"
            "# Vacation days <!here>\n\nFull-time employees get 25 days of paid vacation per calendar year. "
            "Read [the form](javascript:alert(1)) first, <@U0ALICE>.\n",
            encoding="utf-8",
        )
    stats = Indexer(IndexConfig(index_dir=index_dir), embedder).run([docs], progress=False)
    assert stats.failed == 0, stats.errors
    return index_dir

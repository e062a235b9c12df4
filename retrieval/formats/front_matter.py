"""Document metadata: YAML front matter (Markdown) and the fields RST's docinfo shares with it (title,
url, owner, updated, tags, status, superseded_by). Front matter is untrusted: parsed without aliases
and with bounded size and nesting, each value one bounded line."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from typing import Any

import yaml

from retrieval.errors import LoadError

_FRONT_MATTER_END = re.compile(r"^(?:---|\.\.\.)[ \t]*$", re.M)
FRONT_MATTER_LIMIT = 64 * 1024
TEXT_LIMIT = 300  # characters of a title or owner
URL_LIMIT = 2048  # longer is no real address: dropped rather than cut into a wrong one
TAG_LIMIT = 100
TAGS_LIMIT = 50
_MAX_DEPTH = 20  # levels of nesting; real front matter (or a sources file) has two to four


class BoundedLoader(yaml.SafeLoader):
    """yaml's SafeLoader without aliases, and with bounded nesting. Nested `*refs` let a few hundred
    bytes expand into gigabytes once a value is turned into text (the "billion laughs"); the composer
    recurses once per level, so 400 levels of `[[[…]]]` (830 bytes) would exhaust Python's stack."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node | None:
        problem = None
        if self.check_event(yaml.AliasEvent):
            problem = "aliases (*name) are not allowed here"
        elif self._depth >= _MAX_DEPTH:
            problem = f"nested deeper than {_MAX_DEPTH} levels; keep to a few plain fields"
        if problem is not None:
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]  # unannotated in types-PyYAML
            raise yaml.composer.ComposerError(None, None, problem, mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)  # type: ignore[arg-type]
        finally:
            self._depth -= 1


def _shown(value: object) -> str:
    """A value quoted in an error message, cut short: a message is one line a person reads."""
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= 60 else text[:59] + "…"


def one_line(value: object, limit: int) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def split_front_matter(text: str) -> tuple[dict[str, Any], str]:
    """Returns (Document metadata kwargs, body). Bad front matter raises LoadError naming the problem."""
    data, body = read_front_matter(text)
    return (metadata(data, "front matter") if data else {}), body


def read_front_matter(text: str) -> tuple[dict[str, Any], str]:
    """Returns (the front matter's keys as written, body); ({}, text) without front matter. Bad front
    matter raises LoadError naming the problem."""
    if not re.match(r"^---[ \t]*\n", text):
        return {}, text
    start = text.index("\n") + 1
    end = _FRONT_MATTER_END.search(text, start)
    if end is None:
        raise LoadError("front matter opened with '---' on line 1 is never closed with '---'")
    if end.start() - start > FRONT_MATTER_LIMIT:
        raise LoadError(f"front matter is larger than {FRONT_MATTER_LIMIT // 1024} KB; keep it to a few fields")
    try:
        data = load_yaml(text[start : end.start()], "front matter", first_line=2)  # line 1 is the '---'
    except ValueError as exc:
        raise LoadError(str(exc)) from None
    if data is None:
        return {}, text[end.end() :]
    if not isinstance(data, dict):
        raise LoadError(f"front matter must be 'key: value' lines, got a YAML {type(data).__name__}")
    return data, text[end.end() :]


def load_yaml(text: str, where: str, first_line: int = 1) -> Any:
    """Untrusted or hand-written YAML parsed safely: no aliases, bounded nesting (the caller bounds the
    size). Raises ValueError("bad YAML in WHERE at line N: problem"), N counted from `first_line`."""
    try:
        return yaml.load(text, Loader=BoundedLoader)  # noqa: S506 - a SafeLoader, without aliases
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + first_line}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ValueError(f"bad YAML in {where}{line}: {_shown(problem)}") from None


def metadata(data: dict[str, Any], where: str) -> dict[str, Any]:
    """Document metadata kwargs from `data` (front matter, or an RST field list named by `where`)."""
    meta: dict[str, Any] = {}
    for key in ("title", "url", "owner"):
        value = data.get(key)
        if value is None:
            continue
        if isinstance(value, dict | list):
            raise LoadError(f"{where} '{key}' must be text, got a YAML {type(value).__name__}")
        # Front matter is untrusted and reaches Slack: one line, bounded (the url is checked again there).
        text = str(value).strip() if key == "url" else one_line(value, TEXT_LIMIT)
        if text and len(text) <= URL_LIMIT:
            meta[key] = text
    if data.get("updated") is not None:
        meta["updated"] = _iso_date(data["updated"], where)
    if data.get("tags") is not None:
        meta["tags"] = _tags(data["tags"], where)
    if _is_archived(data, meta.get("tags", ()), where):
        meta["archived"] = True
    return meta


# A document is no longer current when its `status` or one of its `tags` is one of these (any case),
# or when it names its replacement in `superseded_by`. Search ranks such documents below current ones.
ARCHIVED_WORDS = frozenset({"archived", "deprecated", "superseded", "legacy"})


def _is_archived(data: dict[str, Any], tags: tuple[str, ...], where: str) -> bool:
    for key in ("status", "superseded_by"):
        if isinstance(data.get(key), dict | list):
            raise LoadError(f"{where} '{key}' must be text, got a YAML {type(data[key]).__name__}")
    # The status's first word: "Deprecated (use the Tailscale guide)" counts as deprecated.
    status = (re.findall(r"[a-z]+", str(data.get("status") or "").lower()) or [""])[0]
    replaced = data.get("superseded_by") not in (None, False) and bool(str(data["superseded_by"]).strip())
    return replaced or status in ARCHIVED_WORDS or any(t.lower() in ARCHIVED_WORDS for t in tags)


def _iso_date(value: object, where: str) -> str:
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    text = str(value).strip()
    try:
        return dt.datetime.fromisoformat(text).date().isoformat()
    except ValueError:
        raise LoadError(f"{where} 'updated' must be a date like 2024-05-31, got {_shown(text)!r}") from None


def _tags(value: object, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        items: Iterable[object] = value.split(",")
    elif isinstance(value, list | tuple):
        items = value
    else:
        raise LoadError(f"{where} 'tags' must be a list or comma-separated text, got {_shown(value)}")
    tags: list[str] = []
    for item in items:
        if isinstance(item, dict | list):
            raise LoadError(f"{where} 'tags' must hold plain words, got {_shown(item)}")
        tag = one_line(item, TAG_LIMIT)
        if tag and tag not in tags and len(tags) < TAGS_LIMIT:
            tags.append(tag)
    return tuple(tags)

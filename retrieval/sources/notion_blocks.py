"""Notion blocks and page properties to Markdown.

The blocks come as the API gives them, each with its fetched children under the key "children". Block
types with text people search for are rendered (headings, paragraphs, lists, to-dos, code, quotes,
callouts, toggles, tables, equations, bookmarks); child pages and databases become links (they are
documents of their own); files hosted by Notion are left out (their URLs expire within the hour).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

Block = Mapping[str, Any]
_LISTS = {"bulleted_list_item", "numbered_list_item", "to_do", "toggle"}
_CONTAINERS = {"column_list", "column", "synced_block", "template", "table_of_contents", "breadcrumb"}


def rich_text(parts: Iterable[Mapping[str, Any]] | None) -> str:
    """Inline Markdown of a rich-text array: bold, italic, strikethrough, code and http(s) links."""
    out = []
    for part in parts or ():
        text = str(part.get("plain_text", ""))
        if not text.strip():
            out.append(text)
            continue
        marks = part.get("annotations") or {}
        if marks.get("code"):
            text = f"`{text}`"
        for mark, wrap in (("bold", "**"), ("italic", "*"), ("strikethrough", "~~")):
            if marks.get(mark):
                text = f"{wrap}{text}{wrap}"
        href = part.get("href")
        if isinstance(href, str) and href.startswith(("http://", "https://")):
            text = f"[{text}]({href})"
        out.append(text)
    return "".join(out)


def plain(parts: Iterable[Mapping[str, Any]] | None) -> str:
    return "".join(str(p.get("plain_text", "")) for p in parts or ())


def blocks_markdown(blocks: Iterable[Block], link: Callable[[str, str], str]) -> str:
    """Markdown of a page's blocks. `link(id, title)` is the Markdown link to a child page or database."""
    return "\n".join(_render(list(blocks), 0, link)).strip() + "\n"


def _render(blocks: list[Block], depth: int, link: Callable[[str, str], str]) -> list[str]:
    lines: list[str] = []
    previous = ""
    for block in blocks:
        kind = str(block.get("type", ""))
        if lines and not (kind in _LISTS and previous in _LISTS):
            lines.append("")  # a blank line between blocks, none between items of one list
        lines.extend(_block(block, kind, depth, link))
        previous = kind
    return lines


def _block(block: Block, kind: str, depth: int, link: Callable[[str, str], str]) -> list[str]:
    data: Mapping[str, Any] = block.get(kind) or {}
    children: list[Block] = list(block.get("children") or [])
    indent = "  " * depth
    text = rich_text(data.get("rich_text"))
    if kind in _LISTS:
        marker = {"bulleted_list_item": "-", "numbered_list_item": "1.", "toggle": "-"}.get(kind)
        if marker is None:
            marker = "- [x]" if data.get("checked") else "- [ ]"
        return [f"{indent}{marker} {text}".rstrip(), *_render(children, depth + 1, link)]
    if kind.startswith("heading_") and kind[-1] in "123":
        return [f"{'#' * int(kind[-1])} {text}", *_nested(children, depth, link)]
    if kind == "paragraph":
        return [indent + text, *_nested(children, depth, link)] if text else _render(children, depth, link)
    if kind in ("quote", "callout"):
        inner = [text, *_render(children, 0, link)]
        return [f"{indent}> {line}".rstrip() for line in inner]
    if kind == "code":
        language = str(data.get("language", "")).replace("plain text", "")
        return [f"{indent}```{language}", *plain(data.get("rich_text")).splitlines(), f"{indent}```"]
    if kind == "table":
        return _table(children, bool(data.get("has_column_header")))
    if kind in ("child_page", "child_database"):
        return [indent + link(str(block.get("id", "")), str(data.get("title", "")) or "Untitled")]
    return _other(kind, data, children, depth, link)


def _other(
    kind: str, data: Mapping[str, Any], children: list[Block], depth: int, link: Callable[[str, str], str]
) -> list[str]:
    if kind == "divider":
        return ["---"]
    if kind == "equation":
        return [f"$$ {data.get('expression', '')} $$"]
    if kind in ("bookmark", "embed", "link_preview") or (
        kind in ("image", "video", "pdf", "file") and "external" in data
    ):
        url = str(data.get("url") or (data.get("external") or {}).get("url") or "")
        caption = plain(data.get("caption")) or url
        return [f"[{caption}]({url})"] if url.startswith(("http://", "https://")) else []
    if kind in ("image", "video", "pdf", "file", "audio"):
        caption = plain(data.get("caption"))
        return [caption] if caption else []
    if kind in _CONTAINERS:
        return _render(children, depth, link)
    return []  # unsupported blocks carry no text the API gives


def _nested(children: list[Block], depth: int, link: Callable[[str, str], str]) -> list[str]:
    return ["", *_render(children, depth, link)] if children else []


def _table(rows: list[Block], header: bool) -> list[str]:
    cells = [[rich_text(c).replace("|", "\\|") for c in (r.get("table_row") or {}).get("cells", [])] for r in rows]
    cells = [row for row in cells if row]
    if not cells:
        return []
    width = max(len(row) for row in cells)
    cells = [row + [""] * (width - len(row)) for row in cells]
    head, body = (cells[0], cells[1:]) if header else ([""] * width, cells)
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * width]
    return lines + ["| " + " | ".join(row) + " |" for row in body]


def properties_markdown(properties: Mapping[str, Any]) -> tuple[str, tuple[str, ...], str]:
    """A database row's title, its tags (select, multi-select, status values), and its other readable
    properties as a Markdown list."""
    title, tags, lines = "", [], []
    for name, prop in properties.items():
        kind = prop.get("type")
        value = prop.get(kind)
        if kind == "title":
            title = plain(value)
        elif kind in ("select", "status") and value:
            tags.append(str(value.get("name", "")))
        elif kind == "multi_select":
            tags.extend(str(v.get("name", "")) for v in value or [])
        else:
            shown = _property_value(kind, value)
            if shown:
                lines.append(f"- **{name}**: {shown}")
    return title, tuple(t for t in tags if t), "\n".join(lines)


def _property_value(kind: Any, value: Any) -> str:
    if value is None or value == []:
        return ""
    if kind == "rich_text":
        return rich_text(value)
    if kind in ("number", "url", "email", "phone_number"):
        return str(value)
    if kind == "checkbox":
        return "yes" if value else "no"
    if kind == "date":
        return " – ".join(str(v) for v in (value.get("start"), value.get("end")) if v)
    if kind == "people":
        return ", ".join(str(p.get("name", "")) for p in value if p.get("name"))
    if kind == "formula":
        return str(value.get(value.get("type"), "") or "")
    return ""

"""Markdown: ATX and setext headings, fenced code kept whole, HTML comments dropped, front matter read
first (front_matter.py)."""

from __future__ import annotations

import re
from pathlib import Path

from retrieval.formats.blocks import Blocks, humanise
from retrieval.formats.front_matter import split_front_matter
from retrieval.models import Document

_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_THEMATIC = re.compile(r"^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")


def parse_markdown(text: str, path: Path, rel_path: str) -> Document:
    meta, body = split_front_matter(text)
    out = Blocks()
    first_h1: str | None = None

    def heading(level: int, title: str) -> None:
        nonlocal first_h1
        out.flush()
        if title.strip():
            first_h1 = first_h1 or (title.strip() if level == 1 else None)
            out.heading(level, title.strip())

    lines = body.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if (fence := _FENCE.match(line)) is not None:
            i = _md_fenced_code(lines, i, fence.group(1), out)
        elif line.lstrip().startswith("<!--"):  # an HTML comment on its own lines: notes to editors
            out.flush()
            while i < len(lines) and "-->" not in lines[i]:
                i += 1
        elif (atx := _ATX.match(line)) is not None:
            heading(len(atx.group(1)), atx.group(2) or "")
        elif out.lines and _SETEXT.match(line) and not _is_list_item(out.lines[-1]):
            title = " ".join(s.strip() for s in out.lines)
            out.lines.clear()
            heading(1 if line.strip().startswith("=") else 2, title)
        elif not line.strip() or _THEMATIC.match(line):
            out.flush()
        else:
            out.lines.append(line)
        i += 1
    out.flush()

    title = meta.pop("title", None) or first_h1 or humanise(path.stem)
    return Document(path=rel_path, title=title, blocks=out.blocks, **meta)


def _md_fenced_code(lines: list[str], i: int, marker: str, out: Blocks) -> int:
    """Adds the code block opened at lines[i] as one block, fences kept; returns its last line."""
    out.flush()
    out.lines.append(lines[i])
    while i + 1 < len(lines):
        i += 1
        out.lines.append(lines[i])
        closing = lines[i].strip()
        if len(closing) >= len(marker) and not closing.strip(marker[0]):
            break
    out.flush()
    return i


def _is_list_item(line: str) -> bool:
    return re.match(r"^\s*(?:[-*+]|\d+[.)])\s", line) is not None

"""reStructuredText: section titles by adornment style, directives kept as text ("Note: ..."), comments
and link targets dropped, a leading field list read as metadata."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from retrieval.formats.blocks import Blocks, humanise
from retrieval.formats.front_matter import metadata
from retrieval.models import Block, Document

_ADORNMENT = re.compile(r"^([!-/:-@\[-`{-~])\1+[ \t]*$")
_EXPLICIT = re.compile(r"^\.\.(?:\s|$)")  # ".. " starts explicit markup; "..." is just text
_DIRECTIVE = re.compile(r"^\.\.[ \t]+([\w:+-]+)::[ \t]*(.*)$")
_EXPLICIT_KEEP = re.compile(r"^\.\.[ \t]+(?:\[[^\]]+\]|\|[^|]+\|)")  # footnotes, citations, substitutions
_FIELD_OPTION = re.compile(r"^:[\w -]+:(?:\s|$)")
_FIELD = re.compile(r"^:([\w -]+):[ \t]*(.*)$")


def parse_rst(text: str, path: Path, rel_path: str) -> Document:
    lines = text.split("\n")
    styles: list[tuple[str, bool]] = []  # adornment styles, in order of first appearance = level
    out = Blocks()
    first_title: str | None = None

    def heading(style: tuple[str, bool], title: str) -> None:
        nonlocal first_title
        if style not in styles:
            styles.append(style)
        out.heading(styles.index(style) + 1, title)
        first_title = first_title or title

    i = 0
    while i < len(lines):
        line = lines[i]
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        after = lines[i + 2] if i + 2 < len(lines) else ""
        over = _ADORNMENT.match(line)
        if over and nxt.strip() and after.strip() == line.strip():
            heading((line.strip()[0], True), nxt.strip())
            i += 3
        elif (
            not out.lines
            and line.strip()
            and not line[0].isspace()
            and _ADORNMENT.match(nxt)
            and len(nxt.strip()) >= min(len(line.strip()), 3)
        ):
            heading((nxt.strip()[0], False), line.strip())
            i += 2
        elif _EXPLICIT.match(line):
            out.flush()
            i = _rst_explicit(lines, i, out.lines)
            out.flush()
        else:
            if not line.strip() or (over and not out.lines):  # a blank line, or a transition
                out.flush()
            else:
                out.lines.append(line)
            i += 1
    out.flush()

    blocks = [Block(text, b.headings) for b in out.blocks if (text := _rst_literal_marks(b.text))]
    meta = _rst_docinfo(blocks[0].text) if blocks else {}
    title = first_title or humanise(path.stem)
    return Document(path=rel_path, title=title, blocks=blocks, **meta)


def _rst_literal_marks(text: str) -> str:
    """'Run this::' reads 'Run this:' and a '::' on its own is nothing, as RST renders them."""
    text = re.sub(r"(?<=\S)::$", ":", text, flags=re.M)
    return re.sub(r"(?:^|[ \t]+)::$", "", text, flags=re.M).strip()


def _rst_docinfo(text: str) -> dict[str, Any]:
    """Metadata from a leading field list (":Owner: Platform team"), RST's front matter."""
    fields = [_FIELD.match(line) for line in text.split("\n")]
    if not all(fields):
        return {}
    known = {"url", "owner", "updated", "tags", "status", "superseded_by"}
    data = {m.group(1).strip().lower(): m.group(2).strip() for m in fields if m}
    return metadata({k: v for k, v in data.items() if k in known}, "field list")


def _rst_explicit(lines: list[str], i: int, out: list[str]) -> int:
    """Handles an explicit markup block starting at lines[i]; returns the index after it.

    Directives keep their content as text ("Note: ..."); footnotes and substitutions are kept as
    written; comments and hyperlink targets are markup, not content, and are dropped.
    """
    first = lines[i]
    body: list[str] = []
    j = i + 1
    while j < len(lines) and (not lines[j].strip() or lines[j][0].isspace()):
        body.append(lines[j])
        j += 1
    while body and not body[-1].strip():
        body.pop()
    directive = _DIRECTIVE.match(first)
    if directive:
        name, argument = directive.group(1), directive.group(2).strip()
        content = _dedent(body)
        while content and _FIELD_OPTION.match(content[0]):  # directive options such as ":class: x"
            content.pop(0)
        label = name.split(":")[-1].replace("-", " ").capitalize()
        out.append(f"{label}: {argument}" if argument else f"{label}:")
        out.extend(content)
    elif _EXPLICIT_KEEP.match(first):
        out.append(first[2:].strip())
        out.extend(_dedent(body))
    return j


def _dedent(lines: list[str]) -> list[str]:
    indents = [len(s) - len(s.lstrip()) for s in lines if s.strip()]
    cut = min(indents, default=0)
    return [s[cut:] for s in lines]

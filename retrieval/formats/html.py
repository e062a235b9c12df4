"""HTML: visible text as blocks under h1-h6 headings (scripts, navigation and hidden elements left out),
the <title> or first h1 as the title."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

from retrieval.formats.blocks import HeadingStack, humanise
from retrieval.models import Block, Document

_HTML_SKIP = frozenset({"script", "style", "nav", "head", "noscript", "template", "svg", "iframe"})
_HTML_VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
)
# Tags that end one block and start another. A list or a table is one block, an item or a row a line.
_HTML_BLOCK = frozenset(
    {
        "p", "pre", "div", "section", "article", "main", "header", "footer", "aside", "blockquote",
        "table", "ul", "ol", "dl", "dt", "dd", "figure", "figcaption", "form", "fieldset",
        "details", "summary", "address", "hr", "body",
    }
)  # fmt: skip
_HTML_HEADINGS = {f"h{n}": n for n in range(1, 7)}
_HTML_BODY_START = _HTML_BLOCK | _HTML_HEADINGS.keys() | {"body"}


class _HTMLText(HTMLParser):
    """Collects visible text as blocks under h1–h6 headings, and the <title>."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title: str | None = None
        self.first_h1: str | None = None
        self.blocks: list[Block] = []
        self._headings = HeadingStack()
        self._buffer: list[str] = []
        self._skip: tuple[str, int] | None = None  # (tag, nesting depth) while inside hidden content
        self._in_title = False
        self._title_text: list[str] = []
        self._heading_level: int | None = None
        self._pre = 0
        self._cells = 0  # cells so far in the current table row

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title" and (self._skip is None or self._skip[0] == "head"):  # not an <svg>'s title
            self._in_title = True
            return
        if self._skip is not None and self._skip[0] == "head" and tag in _HTML_BODY_START:
            self._skip = None  # an unclosed <head> ends where the body's content starts, as in browsers
        if self._skip is not None:
            if tag == self._skip[0]:
                self._skip = (tag, self._skip[1] + 1)
            return
        if tag not in _HTML_VOID and (tag in _HTML_SKIP or _hidden(attrs)):
            self._skip = (tag, 1)
            return
        if tag in _HTML_HEADINGS:
            self._flush()
            self._heading_level = _HTML_HEADINGS[tag]
        elif tag in ("br", "tr"):
            self._buffer.append("\n")
            self._cells = 0
        elif tag == "li":
            self._buffer.append("\n- ")
        elif tag in ("td", "th"):
            self._buffer.append(" | " if self._cells else "")
            self._cells += 1
        elif tag in _HTML_BLOCK:
            self._flush()
            if tag == "pre":
                self._pre += 1

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._skip is None and tag == "br":
            self._buffer.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title" and self._in_title:
            self._in_title = False
            self.title = self.title or " ".join("".join(self._title_text).split()) or None
        elif self._skip is not None:
            if tag == self._skip[0]:
                depth = self._skip[1] - 1
                self._skip = (tag, depth) if depth else None
        elif tag in _HTML_HEADINGS and self._heading_level is not None:
            text = " ".join("".join(self._buffer).split())
            self._buffer.clear()
            if text:
                self._headings.push(self._heading_level, text)
                if self._heading_level == 1 and self.first_h1 is None:
                    self.first_h1 = text
            self._heading_level = None
        elif tag in _HTML_BLOCK:
            self._flush()
            if tag == "pre":
                self._pre = max(0, self._pre - 1)

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self._title_text.append(data)
        elif self._skip is None:
            self._buffer.append(data)

    def close(self) -> None:
        super().close()
        self._flush()

    def _flush(self) -> None:
        if self._heading_level is not None:
            return  # block tags inside a heading belong to the heading text
        raw = "".join(self._buffer)
        self._buffer.clear()
        if self._pre:
            text = raw.strip("\n")
        else:
            lines = (" ".join(line.split()) for line in raw.split("\n"))
            text = "\n".join(line for line in lines if line and line != "-")
        if text.strip():
            self.blocks.append(Block(text, self._headings.path))


def _hidden(attrs: list[tuple[str, str | None]]) -> bool:
    values = {k.lower(): (v or "") for k, v in attrs}
    style = values.get("style", "").replace(" ", "").lower()
    return "hidden" in values or values.get("aria-hidden") == "true" or "display:none" in style


def parse_html(text: str, path: Path, rel_path: str) -> Document:
    parser = _HTMLText()
    parser.feed(text)
    parser.close()
    title = parser.title or parser.first_h1 or humanise(path.stem)
    if parser.first_h1 and re.match(re.escape(parser.first_h1) + r"\s*[|·•:»–—-]\s*\S", title):
        title = parser.first_h1  # "VPN Guide | Northwind IT": the page's own h1, without the site name
    return Document(path=rel_path, title=title, blocks=parser.blocks)

"""Turn source files into Documents: structural blocks under their headings, plus metadata.

One parser per format, all stdlib except YAML (front matter) and pypdf. Every failure a file can
cause is raised as LoadError with a message a person can act on; the indexer reports it and goes on.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import textwrap
from collections.abc import Callable, Iterable
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from retrieval.errors import LoadError
from retrieval.models import Block, Document

if TYPE_CHECKING:
    from pypdf import PdfReader

SUPPORTED_SUFFIXES: frozenset[str] = frozenset({".md", ".markdown", ".txt", ".rst", ".html", ".htm", ".pdf"})


def is_supported(path: Path) -> bool:
    """By suffix only: a binary file with a text suffix is rejected later, by load_document."""
    return path.suffix.lower() in SUPPORTED_SUFFIXES


def load_document(path: Path, rel_path: str) -> Document:
    """Load one file. `rel_path` (POSIX, relative to the indexed root) becomes Document.path."""
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise LoadError(f"unsupported file type {suffix or '(none)'!r}")
    if suffix == ".pdf":
        doc = _load_pdf(path, rel_path)
    else:
        parse = _TEXT_PARSERS[suffix]
        doc = parse(_read_text(path), path, rel_path)
    if not doc.blocks:
        raise LoadError("no text")
    return doc


# --- shared helpers ---------------------------------------------------------------------------

_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
# Control codes other than tab, newlines and form feed, and U+FFFD (a byte no encoding explains):
# text has next to none, random or compressed bytes about one character in eight.
_UNREADABLE = re.compile("[\x01-\x08\x0b\x0e-\x1f\x7f\ufffd]")
_MAX_UNREADABLE_SHARE = 0.05


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise LoadError(f"cannot read file: {exc.strerror or exc}") from None


def _read_text(path: Path) -> str:
    data = _read_bytes(path)
    if data.startswith(_UTF16_BOMS):  # Windows editors save "Unicode" text this way; it is full of NULs
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError:
            raise LoadError("starts with a UTF-16 byte order mark but is not valid UTF-16") from None
    elif b"\x00" in data:
        raise LoadError("binary content (NUL bytes) in a text file")
    else:
        try:
            text = data.decode("utf-8-sig")  # also plain UTF-8: the BOM is optional
        except UnicodeDecodeError:
            # Legacy Windows text; undefined bytes become U+FFFD rather than losing the file.
            text = data.decode("cp1252", errors="replace")
    unreadable = len(_UNREADABLE.findall(text))
    if unreadable > _MAX_UNREADABLE_SHARE * len(text):
        raise LoadError(
            f"binary content: {unreadable / len(text):.0%} of the characters are control codes or "
            "undecodable bytes; not a text file"
        )
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _humanise(stem: str) -> str:
    words = re.sub(r"[_\-\s]+", " ", stem).strip()
    return words[:1].upper() + words[1:] if words else stem


class _HeadingStack:
    """Tracks the current heading path: a new heading at level n replaces levels n and below."""

    def __init__(self) -> None:
        self._stack: list[tuple[int, str]] = []

    def push(self, level: int, text: str) -> None:
        while self._stack and self._stack[-1][0] >= level:
            self._stack.pop()
        self._stack.append((level, text))

    @property
    def path(self) -> tuple[str, ...]:
        return tuple(text for _, text in self._stack)


class _Blocks:
    """Gathers lines into blocks under the current headings, for the line-based formats."""

    def __init__(self) -> None:
        self.headings = _HeadingStack()
        self.blocks: list[Block] = []
        self.lines: list[str] = []

    def flush(self) -> None:
        text = textwrap.dedent("\n".join(self.lines)).strip()
        self.lines.clear()
        if text:
            self.blocks.append(Block(text, self.headings.path))

    def heading(self, level: int, text: str) -> None:
        self.flush()
        self.headings.push(level, text)


# --- Markdown ---------------------------------------------------------------------------------

_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_THEMATIC = re.compile(r"^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_FRONT_MATTER_END = re.compile(r"^(?:---|\.\.\.)[ \t]*$", re.M)


def _parse_markdown(text: str, path: Path, rel_path: str) -> Document:
    meta, body = _split_front_matter(text)
    out = _Blocks()
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

    title = meta.pop("title", None) or first_h1 or _humanise(path.stem)
    return Document(path=rel_path, title=title, blocks=out.blocks, **meta)


def _md_fenced_code(lines: list[str], i: int, marker: str, out: _Blocks) -> int:
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


_FRONT_MATTER_LIMIT = 64 * 1024
_TEXT_LIMIT = 300  # characters of a title or owner
_URL_LIMIT = 2048  # longer is no real address: dropped rather than cut into a wrong one
_TAG_LIMIT = 100
_TAGS_LIMIT = 50
_FRONT_MATTER_DEPTH = 20  # levels of nesting; real front matter has two or three


class _FrontMatterLoader(yaml.SafeLoader):
    """yaml's SafeLoader without aliases, and with bounded nesting. Nested `*refs` let a few hundred
    bytes expand into gigabytes once a value is turned into text (the "billion laughs"); the composer
    recurses once per level, so 400 levels of `[[[…]]]` (830 bytes) would exhaust Python's stack."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node | None:
        problem = None
        if self.check_event(yaml.AliasEvent):
            problem = "aliases (*name) are not allowed in front matter"
        elif self._depth >= _FRONT_MATTER_DEPTH:
            problem = f"nested deeper than {_FRONT_MATTER_DEPTH} levels; keep to a few plain fields"
        if problem is not None:
            raise yaml.composer.ComposerError(None, None, problem, self.peek_event().start_mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)  # type: ignore[arg-type]
        finally:
            self._depth -= 1


def _shown(value: object) -> str:
    """A value quoted in an error message, cut short: a message is one line a person reads."""
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= 60 else text[:59] + "…"


def _one_line(value: object, limit: int) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _split_front_matter(text: str) -> tuple[dict, str]:
    """Returns (Document metadata kwargs, body). Bad front matter raises LoadError naming the problem."""
    if not re.match(r"^---[ \t]*\n", text):
        return {}, text
    start = text.index("\n") + 1
    end = _FRONT_MATTER_END.search(text, start)
    if end is None:
        raise LoadError("front matter opened with '---' on line 1 is never closed with '---'")
    if end.start() - start > _FRONT_MATTER_LIMIT:
        raise LoadError(f"front matter is larger than {_FRONT_MATTER_LIMIT // 1024} KB; keep it to a few fields")
    raw = text[start : end.start()]
    body = text[end.end() :]
    try:
        data = yaml.load(raw, Loader=_FrontMatterLoader)  # noqa: S506 - a SafeLoader, without aliases
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 2}" if where is not None else ""  # +2: 0-based, after '---'
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise LoadError(f"bad YAML in front matter{line}: {_shown(problem)}") from None
    if data is None:
        return {}, body
    if not isinstance(data, dict):
        raise LoadError(f"front matter must be 'key: value' lines, got a YAML {type(data).__name__}")
    return _metadata(data, "front matter"), body


def _metadata(data: dict, where: str) -> dict:
    """Document metadata kwargs from `data` (front matter, or an RST field list named by `where`)."""
    meta: dict = {}
    for key in ("title", "url", "owner"):
        value = data.get(key)
        if value is None:
            continue
        if isinstance(value, dict | list):
            raise LoadError(f"{where} '{key}' must be text, got a YAML {type(value).__name__}")
        # Front matter is untrusted and reaches Slack: one line, bounded (the url is checked again there).
        text = str(value).strip() if key == "url" else _one_line(value, _TEXT_LIMIT)
        if text and len(text) <= _URL_LIMIT:
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


def _is_archived(data: dict, tags: tuple[str, ...], where: str) -> bool:
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
        tag = _one_line(item, _TAG_LIMIT)
        if tag and tag not in tags and len(tags) < _TAGS_LIMIT:
            tags.append(tag)
    return tuple(tags)


# --- plain text -------------------------------------------------------------------------------

_SHORT_TITLE_CHARS = 80


def _paragraphs(text: str) -> list[str]:
    return [p.strip("\n") for p in re.split(r"\n[ \t]*\n", text) if p.strip()]


def _is_text_heading(head: str, body: str) -> bool:
    """Plain text's headings: an unindented short line in capitals ("STEP 2 - CHECK THE CHALLENGE"),
    or one over an indented body ("PORTLAND (United States)" above its indented list)."""
    if head[:1].isspace() or len(head.strip()) > _SHORT_TITLE_CHARS:
        return False
    letters = [c for c in head if c.isalpha()]
    if len(letters) >= 2 and all(c.isupper() for c in letters):
        return True
    lines = [line for line in body.split("\n") if line.strip()]
    return bool(lines) and all(line[:1].isspace() for line in lines) and head.rstrip()[-1:] not in ".,;:"


def _parse_text(text: str, path: Path, rel_path: str) -> Document:
    paras = _paragraphs(text)
    title = _humanise(path.stem)
    first_line, _, rest = paras[0].partition("\n") if paras else ("", "", "")
    if first_line.strip() and len(first_line.strip()) <= _SHORT_TITLE_CHARS:
        title = first_line.strip()
        if rest.strip() or len(paras) > 1:  # the title line is not also a passage, unless it is all
            paras = ([rest] if rest.strip() else []) + paras[1:]
    out = _Blocks()
    for para in paras:
        head, _, body = para.partition("\n")
        if _is_text_heading(head, body) and (body.strip() or para is not paras[-1]):
            out.heading(1, head.strip())
            para = body
        out.lines.extend(para.split("\n"))
        out.flush()
    return Document(path=rel_path, title=title, blocks=out.blocks)


# --- reStructuredText -------------------------------------------------------------------------

_ADORNMENT = re.compile(r"^([!-/:-@\[-`{-~])\1+[ \t]*$")
_EXPLICIT = re.compile(r"^\.\.(?:\s|$)")  # ".. " starts explicit markup; "..." is just text
_DIRECTIVE = re.compile(r"^\.\.[ \t]+([\w:+-]+)::[ \t]*(.*)$")
_EXPLICIT_KEEP = re.compile(r"^\.\.[ \t]+(?:\[[^\]]+\]|\|[^|]+\|)")  # footnotes, citations, substitutions
_FIELD_OPTION = re.compile(r"^:[\w -]+:(?:\s|$)")
_FIELD = re.compile(r"^:([\w -]+):[ \t]*(.*)$")


def _parse_rst(text: str, path: Path, rel_path: str) -> Document:
    lines = text.split("\n")
    styles: list[tuple[str, bool]] = []  # adornment styles, in order of first appearance = level
    out = _Blocks()
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
    title = first_title or _humanise(path.stem)
    return Document(path=rel_path, title=title, blocks=blocks, **meta)


def _rst_literal_marks(text: str) -> str:
    """'Run this::' reads 'Run this:' and a '::' on its own is nothing, as RST renders them."""
    text = re.sub(r"(?<=\S)::$", ":", text, flags=re.M)
    return re.sub(r"(?:^|[ \t]+)::$", "", text, flags=re.M).strip()


def _rst_docinfo(text: str) -> dict:
    """Metadata from a leading field list (":Owner: Platform team"), RST's front matter."""
    fields = [_FIELD.match(line) for line in text.split("\n")]
    if not all(fields):
        return {}
    known = {"url", "owner", "updated", "tags", "status", "superseded_by"}
    data = {m.group(1).strip().lower(): m.group(2).strip() for m in fields if m}
    return _metadata({k: v for k, v in data.items() if k in known}, "field list")


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


# --- HTML -------------------------------------------------------------------------------------

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
        self._headings = _HeadingStack()
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


def _parse_html(text: str, path: Path, rel_path: str) -> Document:
    parser = _HTMLText()
    parser.feed(text)
    parser.close()
    title = parser.title or parser.first_h1 or _humanise(path.stem)
    if parser.first_h1 and re.match(re.escape(parser.first_h1) + r"\s*[|·•:»–—-]\s*\S", title):
        title = parser.first_h1  # "VPN Guide | Northwind IT": the page's own h1, without the site name
    return Document(path=rel_path, title=title, blocks=parser.blocks)


# --- PDF --------------------------------------------------------------------------------------


def _load_pdf(path: Path, rel_path: str) -> Document:
    from pypdf import PdfReader  # imported here: only PDF files pay for it

    # pypdf logs each oddity it meets in a damaged file; a failure is reported once, as LoadError.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    # pypdf signals a damaged file with many exception types (PdfReadError, ValueError, KeyError,
    # struct errors...); any of them means "this PDF cannot be read", which is what we report.
    try:
        reader = PdfReader(path)
        if reader.is_encrypted and not _decrypt_without_password(reader):
            raise LoadError("encrypted PDF: it needs a password; save an unprotected copy to index it")
        pages = [_PDF_CONTROL.sub(" ", page.extract_text() or "") for page in reader.pages]
        blocks = [
            Block(p.strip(), page=number)
            for number, text in enumerate(_drop_running_lines(pages), start=1)
            for p in _paragraphs(text)
        ]
        info_title = (reader.metadata.title if reader.metadata else None) or ""
    except LoadError:
        raise
    except OSError as exc:
        raise LoadError(f"cannot read file: {exc.strerror or exc}") from None
    except Exception as exc:  # see above
        raise LoadError(f"cannot read PDF ({type(exc).__name__}: {exc})") from None
    if not blocks:
        raise LoadError("no text (a scanned PDF without a text layer?)")
    info_title = str(info_title).strip()
    title = info_title if info_title and info_title.lower() != "untitled" else _humanise(path.stem)
    return Document(path=rel_path, title=title, blocks=blocks)


_PDF_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # glyphs such as bullets often come out as these
_RUNNING_LINES = 3  # how far from a page's top or bottom a running header or footer sits


def _drop_running_lines(pages: list[str]) -> list[str]:
    """Removes running headers and footers: edge lines that recur on most pages (page numbers aside)."""
    if len(pages) < 2:
        return pages

    def key(line: str) -> str:
        return re.sub(r"\d+", "#", " ".join(line.split()))

    def edges(lines: list[str]) -> set[str]:
        return {key(line) for line in lines[:_RUNNING_LINES] + lines[-_RUNNING_LINES:] if line.strip()}

    split = [page.split("\n") for page in pages]
    seen: dict[str, int] = {}
    for lines in split:
        for k in edges(lines):
            seen[k] = seen.get(k, 0) + 1
    running = {k for k, n in seen.items() if n >= 2 and n > len(pages) // 2}
    kept = []
    for lines in split:
        edge = set(range(_RUNNING_LINES)) | set(range(len(lines) - _RUNNING_LINES, len(lines)))
        kept.append("\n".join(line for i, line in enumerate(lines) if not (i in edge and key(line) in running)))
    return kept


def _decrypt_without_password(reader: PdfReader) -> bool:
    """PDFs locked only against editing open with an empty password; anything else is unreadable."""
    from pypdf.errors import DependencyError

    try:
        return bool(reader.decrypt(""))
    except DependencyError as exc:  # AES without the optional crypto package
        raise LoadError(f"encrypted PDF that pypdf cannot open here: {exc}") from None


_TEXT_PARSERS: dict[str, Callable[[str, Path, str], Document]] = {
    ".md": _parse_markdown,
    ".markdown": _parse_markdown,
    ".txt": _parse_text,
    ".rst": _parse_rst,
    ".html": _parse_html,
    ".htm": _parse_html,
}

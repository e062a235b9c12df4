"""Turn source files into Documents: the parser for each suffix (retrieval/formats/, one module per
format), and reading a text file's bytes as text whatever its encoding.

A file's metadata may also sit beside it in a hidden sidecar, `.<file name>.meta.yml` (the same keys as
front matter: title, url, updated, owner, tags, status): a source's mirror writes one for each
non-Markdown file (retrieval/sources/mirror.py). Its keys override what the file says of itself. Being
hidden, a sidecar is never indexed as a document; the indexer hashes it with its file.

All stdlib except YAML (front matter) and pypdf. Every failure a file can cause is raised as LoadError
with a message a person can act on; the indexer reports it and goes on.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from pathlib import Path

from retrieval.errors import LoadError
from retrieval.formats.front_matter import FRONT_MATTER_LIMIT, load_yaml, metadata
from retrieval.formats.html import parse_html
from retrieval.formats.markdown import parse_markdown
from retrieval.formats.pdf import load_pdf
from retrieval.formats.plain_text import parse_text
from retrieval.formats.rst import parse_rst
from retrieval.models import Document

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
        doc = load_pdf(path, rel_path)
    else:
        parse = _TEXT_PARSERS[suffix]
        doc = parse(_read_text(path), path, rel_path)
    if not doc.blocks:
        raise LoadError("no text")
    return _with_sidecar(doc, path)


def sidecar_path(path: Path) -> Path:
    """Where the metadata of the file at `path` sits, when it has a sidecar."""
    return path.with_name(f".{path.name}.meta.yml")


def sidecar_bytes(path: Path) -> bytes:
    """The bytes of `path`'s sidecar (b"" without one): part of the file's hash, so a change of its
    metadata alone re-indexes it. Raises OSError when it is there but cannot be read."""
    try:
        return sidecar_path(path).read_bytes()
    except FileNotFoundError:
        return b""


def _with_sidecar(doc: Document, path: Path) -> Document:
    where = f"metadata file {sidecar_path(path).name}"
    try:
        data = sidecar_bytes(path)
    except OSError as exc:
        raise LoadError(f"cannot read its {where}: {exc.strerror or exc}") from None
    if not data:
        return doc
    if len(data) > FRONT_MATTER_LIMIT:
        raise LoadError(f"{where} is larger than {FRONT_MATTER_LIMIT // 1024} KB; keep it to a few fields")
    try:
        raw = load_yaml(data.decode("utf-8", errors="replace"), where)
    except ValueError as exc:
        raise LoadError(str(exc)) from None
    if not isinstance(raw, dict):
        raise LoadError(f"{where} must be 'key: value' lines")
    return dataclasses.replace(doc, **metadata(raw, where))


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


_TEXT_PARSERS: dict[str, Callable[[str, Path, str], Document]] = {
    ".md": parse_markdown,
    ".markdown": parse_markdown,
    ".txt": parse_text,
    ".rst": parse_rst,
    ".html": parse_html,
    ".htm": parse_html,
}

"""PDF: each page's text layer (pypdf) in paragraphs with their page numbers, running headers and
footers removed; encrypted and damaged files fail as LoadError."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING

from retrieval.errors import LoadError
from retrieval.formats.blocks import humanise, paragraphs
from retrieval.models import Block, Document

if TYPE_CHECKING:
    from pypdf import PdfReader


def load_pdf(path: Path, rel_path: str) -> Document:
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
            for p in paragraphs(text)
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
    title = info_title if info_title and info_title.lower() != "untitled" else humanise(path.stem)
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

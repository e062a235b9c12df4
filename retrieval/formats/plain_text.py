"""Plain text: the first short line is the title, paragraphs are blocks, and a short line in capitals
(or over an indented body) is a heading."""

from __future__ import annotations

from pathlib import Path

from retrieval.formats.blocks import Blocks, humanise, paragraphs
from retrieval.models import Document

_SHORT_TITLE_CHARS = 80


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


def parse_text(text: str, path: Path, rel_path: str) -> Document:
    paras = paragraphs(text)
    title = humanise(path.stem)
    first_line, _, rest = paras[0].partition("\n") if paras else ("", "", "")
    if first_line.strip() and len(first_line.strip()) <= _SHORT_TITLE_CHARS:
        title = first_line.strip()
        if rest.strip() or len(paras) > 1:  # the title line is not also a passage, unless it is all
            paras = ([rest] if rest.strip() else []) + paras[1:]
    out = Blocks()
    for para in paras:
        head, _, body = para.partition("\n")
        if _is_text_heading(head, body) and (body.strip() or para is not paras[-1]):
            out.heading(1, head.strip())
            para = body
        out.lines.extend(para.split("\n"))
        out.flush()
    return Document(path=rel_path, title=title, blocks=out.blocks)

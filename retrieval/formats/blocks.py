"""What the line-based parsers share: blocks gathered under the current heading path, paragraphs,
and a title made from a file name."""

from __future__ import annotations

import re
import textwrap

from retrieval.models import Block


def humanise(stem: str) -> str:
    """A title from a file name's stem: "vpn-setup_guide" reads "Vpn setup guide"."""
    words = re.sub(r"[_\-\s]+", " ", stem).strip()
    return words[:1].upper() + words[1:] if words else stem


def paragraphs(text: str) -> list[str]:
    return [p.strip("\n") for p in re.split(r"\n[ \t]*\n", text) if p.strip()]


class HeadingStack:
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


class Blocks:
    """Gathers lines into blocks under the current headings, for the line-based formats."""

    def __init__(self) -> None:
        self.headings = HeadingStack()
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

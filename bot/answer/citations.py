"""[n] citations in answer text: which sources an answer uses, and removal of numbers with no source.

The filter works on streamed text, so the text shown while streaming is exactly the final text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from bot.answer.records import Source

# "[2]", "[1, 3]", "[1;3]", with the whitespace before it (dropped along with a citation that goes).
_CITATION = re.compile(r"(\s*)\[(\d{1,4}(?:\s*[,;]\s*\d{1,4})*)\]")
# What may still become a citation when more text arrives: trailing whitespace and an open "[1, ".
_MAYBE_CITATION = re.compile(r"\s*(?:\[[\d\s,;]*)?$")
_MAX_HELD = 40  # longer than any citation: flush instead of holding text back


class CitationFilter:
    """Removes citations to numbers outside 1..count from streamed text, keeping the valid ones."""

    def __init__(self, count: int) -> None:
        self.count = count
        self._pending = ""

    def feed(self, text: str) -> str:
        buf = self._pending + text
        out: list[str] = []
        pos = 0
        for m in _CITATION.finditer(buf):
            out.append(buf[pos : m.start()])
            out.append(self._rewrite(m))
            pos = m.end()
        rest = buf[pos:]
        held = _MAYBE_CITATION.search(rest)
        cut = held.start() if held and len(rest) - held.start() <= _MAX_HELD else len(rest)
        out.append(rest[:cut])
        self._pending = rest[cut:]
        return "".join(out)

    def flush(self) -> str:
        rest, self._pending = self._pending, ""
        return rest

    def _rewrite(self, m: re.Match[str]) -> str:
        numbers = [int(n) for n in re.findall(r"\d+", m.group(2))]
        valid = [n for n in numbers if 1 <= n <= self.count]
        if valid == numbers:
            return m.group(0)
        if not valid:
            return ""
        return f"{m.group(1)}[{', '.join(map(str, valid))}]"


def clean_citations(text: str, count: int) -> str:
    f = CitationFilter(count)
    return f.feed(text) + f.flush()


def cited_numbers(text: str) -> set[int]:
    return {int(n) for m in _CITATION.finditer(text) for n in re.findall(r"\d+", m.group(2))}


def cited_sources(text: str, sources: Sequence[Source]) -> list[Source]:
    """The sources the text cites, in source order; uncited ones are dropped."""
    used = cited_numbers(text)
    return [s for s in sources if s.n in used]


def strip_citations(text: str) -> str:
    """Text without any [n] (earlier answers in a thread used other numbers)."""
    return _CITATION.sub("", text)

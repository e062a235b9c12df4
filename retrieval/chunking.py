"""Split a Document into Chunks that follow its structure and fit the embedding model.

Sizes are counted in the model's own word pieces, the header line ("Title > Heading path") included,
so nothing the model is given is silently truncated. Blocks of one section are packed together; a
block too long for one chunk is cut at line, then sentence, then word boundaries; consecutive chunks
of one section share a tail of the earlier one (the overlap).

Each block is tokenized once; the size of any part of it is read off the token offsets, which keeps
chunking cheap next to embedding.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from retrieval.embeddings import Embedder
from retrieval.errors import RetrievalConfigError
from retrieval.models import Chunk, Document

_SPECIAL_TOKENS = 2  # [CLS] and [SEP] (or the model's equivalents) around every input
_MIN_TOKENS = 16  # below this a header and any text cannot share a chunk
_LINE_BREAK = re.compile(r"\s*\n\s*")
# Whitespace after . ! or ?, optionally closed by a quote or bracket, which stays with its sentence.
_SENTENCE_BREAK = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"'”’)\]]))\s+")
# Ever finer cuts for a text too long for one chunk, with what joins the parts back together.
_SPLITTERS = ((_LINE_BREAK, "\n"), (_SENTENCE_BREAK, " "))
_WINDOW_CHARS = 20_000  # a longer block is tokenized a window at a time, cut at a line break or space


class _Measured:
    """A text tokenized once; the token count of any part of it comes from the offsets."""

    def __init__(self, text: str, embedder: Embedder) -> None:
        self.text = text
        self.spans = embedder.token_spans(text)
        self.starts = [start for start, _ in self.spans]

    def count(self, start: int, end: int) -> int:
        return bisect_left(self.starts, end) - bisect_left(self.starts, start)

    def strip(self, start: int, end: int) -> tuple[int, int]:
        while start < end and self.text[start].isspace():
            start += 1
        while end > start and self.text[end - 1].isspace():
            end -= 1
        return start, end

    def parts(self, pattern: re.Pattern[str], start: int, end: int) -> list[tuple[int, int]]:
        """The stripped, non-empty stretches of text[start:end] between matches of `pattern`."""
        cuts = [(m.start(), m.end()) for m in pattern.finditer(self.text, start, end)]
        bounds = zip([start] + [b for _, b in cuts], [a for a, _ in cuts] + [end], strict=True)
        return [(a, b) for a, b in (self.strip(a, b) for a, b in bounds) if a < b]

    def piece(self, start: int, end: int, sep: str, exact: bool = True) -> _Piece:
        return _Piece(self, start, end, self.count(start, end), sep, exact)


@dataclass(frozen=True)
class _Piece:
    source: _Measured
    start: int
    end: int
    tokens: int
    sep: str  # what joins it to the piece before it: "\n\n" between blocks, "\n" lines, " " sentences
    exact: bool  # False when cut inside a word: tokenized alone, it may count differently

    @property
    def text(self) -> str:
        return self.source.text[self.start : self.end]


def chunk_document(doc: Document, embedder: Embedder, max_tokens: int = 200, overlap_tokens: int = 40) -> list[Chunk]:
    """Chunks in document order; ids are stable for the same path and position."""
    limit = min(max_tokens, embedder.max_tokens - _SPECIAL_TOKENS)
    if limit < _MIN_TOKENS:
        if max_tokens < _MIN_TOKENS:
            raise RetrievalConfigError(
                f"QWENBOT_CHUNK_TOKENS={max_tokens} is too small; set it to {_MIN_TOKENS} or more"
            )
        raise RetrievalConfigError(
            f"the embedding model {embedder.name!r} takes only {embedder.max_tokens} tokens, too few to chunk for; "
            "set QWENBOT_EMBEDDING_MODEL to another model"
        )
    id_prefix = hashlib.sha1(doc.path.encode("utf-8")).hexdigest()[:12]
    chunks: list[Chunk] = []
    for (headings, page), section in itertools.groupby(doc.blocks, key=lambda b: (b.headings, b.page)):
        heading_path = _heading_path(doc.title, headings)
        header = _header(doc.title, heading_path, embedder, limit)
        budget = limit - embedder.count_tokens(header)
        pieces = (piece for block in section for piece in _block_pieces(block.text, embedder, budget))
        for body in _pack(pieces, budget, overlap_tokens):
            for text in _fit(header, body, limit, embedder):
                ordinal = len(chunks)
                chunks.append(
                    Chunk(
                        id=f"{id_prefix}-{ordinal:04d}",
                        path=doc.path,
                        ordinal=ordinal,
                        text=text,
                        embed_text=header + text,
                        title=doc.title,
                        heading_path=heading_path,
                        page=page,
                        url=doc.url,
                        owner=doc.owner,
                        updated=doc.updated,
                        tags=doc.tags,
                        archived=doc.archived,
                    )
                )
    return chunks


def _heading_path(title: str, headings: tuple[str, ...]) -> str:
    # The first heading often restates the title (a Markdown H1 under a front-matter title, an HTML
    # h1 repeating <title>): it is said once, as the title, not twice.
    if headings and _restates(headings[0], title):
        headings = headings[1:]
    return " > ".join(headings)


def _restates(heading: str, title: str) -> bool:
    a, b = (" ".join(s.split()).casefold() for s in (heading, title))
    return bool(a) and bool(b) and (a in b or b in a)


def _header(title: str, heading_path: str, embedder: Embedder, limit: int) -> str:
    header = " > ".join(part for part in (title, heading_path) if part)
    if not header:
        return ""
    # A pathological header (a heading that is a whole paragraph) must leave room for the body.
    room = limit // 2
    if embedder.count_tokens(header) > room:
        measured = _Measured(header, embedder)
        header = _split_words(measured, 0, len(header), "", room - 1)[0].text + " …"
    return header + "\n"


def _block_pieces(text: str, embedder: Embedder, budget: int) -> Iterator[_Piece]:
    """A block's pieces, tokenized a window at a time: a block may be a whole file on one line, and
    its token offsets would take many times its own size. Pieces are made as they are packed, so a
    window's offsets are let go once its chunks are made."""
    start, sep = 0, "\n\n"
    while start < len(text):
        end = len(text) if len(text) - start <= _WINDOW_CHARS else _window_end(text, start)
        window = _Measured(text[start:end], embedder)
        pieces = _split(window, *window.strip(0, end - start), sep, budget, 0)
        if sep == "" and pieces:  # cut inside a word: the first piece counts differently alone
            pieces[0] = _unchecked(pieces[0])
        yield from pieces
        gap = end
        while gap < len(text) and text[gap].isspace():
            gap += 1
        sep = "" if gap == end else ("\n" if "\n" in text[end:gap] else " ")
        start = gap


def _window_end(text: str, start: int) -> int:
    """Where a window from `start` ends: at the last line break, else the last space, in its second half."""
    lo, hi = start + _WINDOW_CHARS // 2, start + _WINDOW_CHARS
    for sep in ("\n", " "):
        at = text.rfind(sep, lo, hi)
        if at != -1:
            return at
    return hi


def _split(text: _Measured, start: int, end: int, sep: str, budget: int, depth: int) -> list[_Piece]:
    if start >= end:
        return []
    if text.count(start, end) <= budget:
        return [text.piece(start, end, sep)]
    for level in range(depth, len(_SPLITTERS)):
        pattern, inner_sep = _SPLITTERS[level]
        parts = text.parts(pattern, start, end)
        if len(parts) > 1:
            return [
                piece
                for i, (a, b) in enumerate(parts)
                for piece in _split(text, a, b, sep if i == 0 else inner_sep, budget, level + 1)
            ]
    return _split_words(text, start, end, sep, budget)


def _split_words(text: _Measured, start: int, end: int, sep: str, budget: int) -> list[_Piece]:
    """Cuts at most `budget` word pieces at a time, at a word start when there is one in reach."""
    first, stop = bisect_left(text.starts, start), bisect_left(text.starts, end)
    pieces: list[_Piece] = []
    exact = True
    while first < stop:
        last = min(first + budget, stop)
        if last < stop:
            word_start = next((c for c in range(last, first, -1) if _word_start(text, c)), None)
            if word_start is not None:
                last = word_start
        mid_word = last < stop and not _word_start(text, last)
        pieces.append(
            text.piece(
                text.spans[first][0], text.spans[last - 1][1], sep if not pieces else " ", exact and not mid_word
            )
        )
        exact = not mid_word  # the piece after a mid-word cut starts inside a word
        first = last
    return pieces


def _word_start(text: _Measured, token: int) -> bool:
    at = text.spans[token][0]
    return at > 0 and text.text[at - 1].isspace()


def _pack(pieces: Iterable[_Piece], budget: int, overlap: int) -> Iterator[list[_Piece]]:
    """Greedy packing of one section's pieces; each new chunk opens with the last one's tail."""
    current: list[_Piece] = []
    total = 0
    for piece in pieces:
        if current and total + piece.tokens > budget:
            yield current
            # At most half the previous chunk, and never so much that this piece would not fit.
            room = min(overlap, total // 2, budget - piece.tokens)
            current = _tail(current, room) if room > 0 else []
            total = sum(p.tokens for p in current)
        current.append(piece)
        total += piece.tokens
    if current:
        yield current


def _tail(pieces: list[_Piece], room: int) -> list[_Piece]:
    """The end of a chunk, at most `room` tokens: whole pieces, else whole sentences, else words."""
    taken: list[_Piece] = []
    used = 0
    for piece in reversed(pieces):
        if used + piece.tokens > room:
            break
        taken.insert(0, piece)
        used += piece.tokens
    if taken:
        return taken
    last = pieces[-1]
    text = last.source
    for a, _ in text.parts(_SENTENCE_BREAK, last.start, last.end)[1:]:
        if text.count(a, last.end) <= room:
            return [text.piece(a, last.end, last.sep)]
    # No whole sentence is short enough: the last words, starting at a word.
    first = max(bisect_left(text.starts, last.end) - room, bisect_left(text.starts, last.start) + 1)
    stop = bisect_left(text.starts, last.end)
    word = next((t for t in range(first, stop) if _word_start(text, t)), None)
    return [text.piece(text.spans[word][0], last.end, last.sep)] if word is not None else []


def _fit(header: str, body: list[_Piece], limit: int, embedder: Embedder) -> list[str]:
    """The packed body as text, cut further in the rare case it is over the limit once joined.

    With WordPiece (MiniLM) the counts add up exactly; other tokenizers can merge across the joins
    and a piece cut inside a word can count differently alone, so then the real count is checked.
    """
    text = body[0].text + "".join(p.sep + p.text for p in body[1:])
    if embedder.counts_add_up and all(p.exact for p in body):
        return [text]
    tokens = embedder.count_tokens(header + text)
    if tokens <= limit:
        return [text]
    whole = _Measured(text, embedder)
    halves = _split_words(whole, 0, len(text), "", max(1, len(whole.spans) // 2))
    return [fitted for half in halves for fitted in _fit(header, [_unchecked(half)], limit, embedder)]


def _unchecked(piece: _Piece) -> _Piece:
    # Marked inexact so that _fit checks it against the real count.
    return _Piece(piece.source, piece.start, piece.end, piece.tokens, piece.sep, False)

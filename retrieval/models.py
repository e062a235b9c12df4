"""Records that cross module lines inside retrieval and out to the bot."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Block:
    """A structural unit of a document: a paragraph (or list, table, code block) under its headings."""

    text: str
    headings: tuple[str, ...] = ()
    page: int | None = None  # 1-based, PDFs only


@dataclass(frozen=True)
class Document:
    """A loaded source file. `path` is relative to the indexed root, POSIX separators."""

    path: str
    title: str
    blocks: list[Block]
    url: str | None = None
    owner: str | None = None
    updated: str | None = None  # ISO date, YYYY-MM-DD
    tags: tuple[str, ...] = ()
    archived: bool = False  # front matter marks it archived / deprecated / superseded (formats/front_matter.py)


@dataclass(frozen=True)
class Chunk:
    """A piece of a document sized for the embedding model.

    `text` is the passage shown to people and the LLM; `embed_text` (title + heading path + text)
    is what is embedded and lexically indexed.
    """

    id: str
    path: str
    ordinal: int
    text: str
    embed_text: str
    title: str
    heading_path: str  # "Handbook > Leave > Vacation"
    page: int | None = None
    url: str | None = None
    owner: str | None = None
    updated: str | None = None
    tags: tuple[str, ...] = ()
    archived: bool = False


@dataclass(frozen=True)
class Hit:
    """One search result."""

    chunk_id: str
    text: str
    score: float  # fused score, archived documents' scaled down (retrieval/archive.py); higher is better
    title: str
    heading_path: str
    path: str
    url: str | None = None
    updated: str | None = None
    page: int | None = None
    tags: tuple[str, ...] = ()
    dense_score: float | None = None  # cosine similarity, when the dense side found it
    lexical_score: float | None = None  # raw BM25, when the lexical side found it
    rerank_score: float | None = None  # the reranker's relevance, when a reranker ran
    archived: bool = False  # the document is archived / deprecated / superseded
    owner: str | None = None  # front matter `owner`: untrusted text (the gap digest names it)


@dataclass(frozen=True)
class SearchFilter:
    """Restricts a search to documents under any of `path_prefixes` or carrying any of `tags`, and
    never under any of `exclude_prefixes` (a source that answers only in other channels).

    All empty means no restriction. When both `path_prefixes` and `tags` are given, a document passes
    if it matches either; an excluded document never passes, whatever it matches.
    """

    path_prefixes: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    exclude_prefixes: tuple[str, ...] = ()

    @property
    def is_empty(self) -> bool:
        return not self.path_prefixes and not self.tags and not self.exclude_prefixes


@dataclass(frozen=True)
class FileProblem:
    """A file an indexer run did not index: `path` as the admin named it, and why."""

    path: str
    reason: str
    skipped: bool = False  # on purpose (unsupported type, too large, secret-named): not a failure
    new: bool = True  # a failure: not the same one an earlier run recorded for the unchanged file

    @property
    def line(self) -> str:
        return f"{self.path}: skipped: {self.reason}" if self.skipped else f"{self.path}: {self.reason}"


@dataclass
class IndexStats:
    """What one indexer run (or removal) did; printed as the summary line."""

    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    skipped: int = 0
    failed: int = 0
    chunks_embedded: int = 0
    chunks_reused: int = 0
    chunks_total: int = 0  # in the index after the run
    seconds: float = 0.0
    renamed: int = 0  # a document removed and one added with the same content (not in `added` / `removed`)
    failed_new: int = 0  # of `failed`: not failing the same way, unchanged, in an earlier run
    documents: int = 0  # in the index after the run
    problems: list[FileProblem] = field(default_factory=list)
    renames: list[tuple[str, str]] = field(default_factory=list)  # (old key, new key)
    removals: list[str] = field(default_factory=list)  # keys removed (renames not included)
    notes: list[str] = field(default_factory=list)  # what else the run did: a moved docs folder, a migration

    @property
    def errors(self) -> list[str]:
        """Every problem as one "path: reason" line."""
        return [p.line for p in self.problems]

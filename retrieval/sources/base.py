"""What every connector shares: the documents it hands over, what the sync already knows, and the one
method a connector implements.

A connector only lists and fetches. It gets the cursor it returned last time (None on a first sync)
and the documents the sync knows from this source (from the shared state, so any replica can run the
next sync), and returns what changed since. The sync (sync.py) writes those documents into the
source's mirror folder, with front matter, and the indexer indexes that folder as a root like any
other: hashing, renames, deletions and crash safety stay in the indexer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

Cursor = Any  # JSON-serialisable: whatever the connector needs to continue (a commit, a token, a time)


@dataclass(frozen=True)
class SourceDocument:
    """One document as the source has it now."""

    doc_id: str  # stable at the source (page id, file id, path in the repository, page URL)
    # Where it lives in the mirror: a relative POSIX path with the file's extension. Markdown (.md)
    # gets the metadata as front matter; other types (.pdf, .html, .txt, .rst) are written as they are,
    # with their metadata beside them.
    path: str
    title: str
    content: bytes
    url: str | None = None  # where people read it; citations link here
    updated: str | None = None  # ISO 8601 date or date-time of its last change at the source
    owner: str | None = None
    tags: tuple[str, ...] = ()
    status: str | None = None  # "archived" (or deprecated, ...) demotes it in answers
    version: str = ""  # the source's own change marker (blob sha, ETag, lastmod, last_edited_time)


@dataclass(frozen=True)
class KnownDocument:
    """A document an earlier sync mirrored, as the shared state remembers it."""

    path: str
    version: str
    hash: str  # sha256 of the mirrored file's bytes


@dataclass
class Changes:
    """What changed at the source since the cursor."""

    upserts: list[SourceDocument] = field(default_factory=list)  # new or changed documents
    deleted: list[str] = field(default_factory=list)  # doc ids gone, or out of reach, at the source
    cursor: Cursor = None  # stored only once the index holds this sync's changes
    # True when upserts + `unchanged` list every document the source has now (a sitemap, a crawl, a
    # full listing): known ids among neither are deleted too.
    listed_all: bool = False
    unchanged: list[str] = field(default_factory=list)  # doc ids listed and unchanged (with listed_all)
    requests: int = 0  # requests (HTTP calls, git commands) this sync made: the bench counts them
    notes: list[str] = field(default_factory=list)  # one line each: documents skipped and why (no secrets)


class Connector(Protocol):
    """Lists and fetches one configured source."""

    def changes(self, cursor: Cursor, known: Mapping[str, KnownDocument]) -> Changes:
        """What changed since `cursor` (None: everything there is). Raises a SourceError (retrieval.errors)
        whose message starts with the source's name and says what to fix."""
        ...

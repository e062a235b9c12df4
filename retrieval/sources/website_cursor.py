"""What the website connector keeps between syncs: each page's version (its validators and sitemap
lastmod, as the document's `version`) and, in the cursor, every page crawled with its links, so a crawl
walks on through pages that answered 304 and a replica that never synced crawls as cheaply."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from retrieval.sources.base import Cursor

CURSOR_FORMAT = 1


@dataclass(frozen=True)
class Page:
    """What the cursor keeps of a page: its validators, and (when crawling) its links in the prefix."""

    version: str
    links: tuple[str, ...] | None
    skipped: str = ""  # why it is not a document (a 304 repeats the note without downloading it)


def version_of(etag: str | None, modified: str | None, lastmod: str | None) -> str:
    """A page's `version`: its validators (ETag, Last-Modified) and its sitemap lastmod."""
    fields = {"etag": etag, "modified": modified, "lastmod": lastmod}
    return json.dumps({k: v for k, v in fields.items() if v}, sort_keys=True, separators=(",", ":"))


def validators(version: str) -> dict[str, str]:
    fields = version_fields(version)
    headers = {}
    if fields.get("etag"):
        headers["If-None-Match"] = fields["etag"]
    if fields.get("modified"):
        headers["If-Modified-Since"] = fields["modified"]
    return headers


def version_fields(version: str) -> dict[str, str]:
    try:
        fields = json.loads(version) if version else {}
    except ValueError:
        return {}
    return {k: v for k, v in fields.items() if isinstance(v, str)} if isinstance(fields, dict) else {}


def load_cursor(cursor: Cursor, prefix: str) -> dict[str, Page]:
    """The pages of the last sync's cursor; links are dropped when the prefix changed since."""
    if not isinstance(cursor, dict) or cursor.get("format") != CURSOR_FORMAT:
        return {}
    urls, pages, same = cursor.get("urls"), cursor.get("pages"), cursor.get("prefix") == prefix
    if not isinstance(urls, list) or not isinstance(pages, list):
        return {}
    loaded = {}
    for entry in pages:
        try:
            index, version, links, skipped = entry
            loaded[urls[index]] = Page(
                version, tuple(urls[i] for i in links) if same and links is not None else None, skipped
            )
        except (ValueError, TypeError, IndexError):
            continue
    return loaded


def dump_cursor(pages: Mapping[str, Page], prefix: str) -> dict[str, Any]:
    """Each URL once in a table, pages and links as its indices: a site's navigation links every page
    from every page, and the cursor stays small."""
    index: dict[str, int] = {}

    def number(url: str) -> int:
        return index.setdefault(url, len(index))

    rows = [
        [number(url), page.version, None if page.links is None else [number(link) for link in page.links], page.skipped]
        for url, page in pages.items()
    ]
    return {"format": CURSOR_FORMAT, "prefix": prefix, "urls": list(index), "pages": rows}

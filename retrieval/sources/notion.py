"""Notion through its API, with the notion-client SDK: the pages and database rows shared with the
integration (all of them, or those under configured root pages and databases), blocks as Markdown.

Every sync lists what the integration can see with search (pages, newest edit first, 100 a request; and
the data sources, for the databases' titles and places), compares each page's version marker
(last_edited_time, plus its title, ancestors and tags) with the shared state, and fetches the blocks of
new or changed pages only. Notion rounds last_edited_time to the minute, so pages edited in or after the
minute of the previous sync are fetched again: an edit made while that sync ran is not missed.

Deletions: search leaves out pages in the trash and pages no longer shared with the integration, so a
known page the listing misses is gone; as Notion's search index can lag, each such page is confirmed
with one request (404 or in the trash: deleted; still there: kept). An unchanged workspace of 1,000
pages costs 10 + 1 search requests.

Rate limits: Notion allows about three requests a second and answers 429 with Retry-After; the SDK's own
retries are off so every request is counted and waited out within the sync's budget.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from notion_client import APIResponseError, Client
from notion_client.errors import HTTPResponseError, RequestTimeoutError

from retrieval.errors import SourceAuthError, SourceError, SourceNotFoundError, SourceUnreachableError
from retrieval.retry_after import retry_after_seconds
from retrieval.sources.base import Changes, Cursor, KnownDocument, SourceDocument
from retrieval.sources.notion_blocks import blocks_markdown, plain, properties_markdown
from retrieval.sources.spec import SourceSpec
from retrieval.sources.wiki import RetryBudget, page_markdown, slug

KEYS = {"token_env", "pages", "databases", "api_url"}
NOTION_VERSION = "2025-09-03"  # the API version every request asks for (Notion-Version header)
PAGE_SIZE = 100  # Notion's maximum per request
TIMEOUT_MS = 30_000
RECENT = timedelta(minutes=2)  # last_edited_time is rounded to the minute
PACE = 0.35  # seconds between requests: Notion allows an average of three a second
CONFIRM_LIMIT = 50  # known pages missing from the listing confirmed one by one; more are gone for sure
MAX_DEPTH = 8  # nested block levels fetched
MAX_BLOCKS = 5_000  # blocks fetched per page; the rest is left out with a note
_ID = re.compile(r"[0-9a-f]{32}")


def connector(spec: SourceSpec, work_dir: Path) -> NotionConnector:
    return NotionConnector(spec)


def notion_id(value: str) -> str | None:
    """The dashed id in an id or a Notion URL (with or without dashes); None when there is none."""
    found = _ID.findall(value.lower().replace("-", ""))
    if not found:
        return None
    h = found[-1]
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@dataclass(frozen=True)
class _Page:
    id: str
    title: str
    url: str | None
    edited: str  # last_edited_time
    parent: tuple[str, str | None]  # (type, id): page_id, data_source_id, block_id, workspace
    database: str | None  # a row's database id
    tags: tuple[str, ...]
    properties: str  # a row's other properties, as Markdown


class NotionConnector:
    def __init__(self, spec: SourceSpec, sleep: Callable[[float], None] = time.sleep, pace: float = PACE) -> None:
        unknown = sorted(set(spec.settings) - KEYS)
        if unknown:
            raise spec.error(f"unknown setting {unknown[0]!r}: use {', '.join(sorted(KEYS))}")
        self.spec, self._sleep, self.pace = spec, sleep, pace
        self.prefix = f"source {spec.name!r} ({spec.kind}): "
        self.roots: dict[str, str] = {}  # id -> "page" | "database"
        for key, kind in (("pages", "page"), ("databases", "database")):
            for value in spec.strings(key):
                root = notion_id(value)
                if root is None:
                    raise spec.error(f"'{key}' holds {value!r}: use a {kind} id or its Notion URL")
                self.roots[root] = kind
        self.api_url = spec.get("api_url", str, "https://api.notion.com").rstrip("/")
        parts = urlsplit(self.api_url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.username:
            raise spec.error("'api_url' must be an http(s) address without credentials")
        self.host = parts.hostname
        self.token_env = str(spec.settings.get("token_env", ""))
        self._token = spec.secret("token_env")

    def changes(self, cursor: Cursor, known: Mapping[str, KnownDocument]) -> Changes:
        started = datetime.now(UTC)
        state = cursor if isinstance(cursor, dict) else {}
        with _Session(self, dict(state.get("block_parents") or {})) as session:
            for root, kind in self.roots.items():
                session.check_root(root, kind)
            tree = _Tree(session)
            pages = {p.id: p for p in tree.pages.values() if tree.in_scope(p.id, self.roots)}
            since = _time(state.get("synced")) - RECENT if state.get("synced") else None
            changes = Changes(listed_all=True)
            for page in pages.values():
                version, path = self._version(page, tree), _path(page)
                seen = known.get(page.id)
                fresh = since is not None and _time(page.edited) < since
                if seen is not None and fresh and seen.version == version and seen.path == path:
                    changes.unchanged.append(page.id)
                    continue
                document = self._document(page, tree, session, version)
                if document is None:  # not listed now: the sync drops it if it knew it
                    changes.notes.append(f"page {page.id} vanished during the sync")
                else:
                    changes.upserts.append(document)
            missing = sorted(set(known) - set(pages))
            # Search lags behind a few recent changes; when many known pages are missing at once, they
            # were unshared or deleted (a root unshared): confirming each would cost a request apiece.
            for doc_id in missing if len(missing) <= CONFIRM_LIMIT else ():
                if session.still_there(doc_id, tree, self.roots):
                    changes.unchanged.append(doc_id)
            changes.notes.extend(session.notes)
            changes.requests = session.budget.requests
            changes.cursor = {"synced": started.isoformat(timespec="seconds"), "block_parents": session.block_parents}
        return changes

    def _version(self, page: _Page, tree: _Tree) -> str:
        shape = json.dumps([page.title, tree.ancestors(page), sorted(page.tags), page.properties])
        return f"{page.edited}|{hashlib.sha256(shape.encode()).hexdigest()[:16]}"

    def _document(self, page: _Page, tree: _Tree, session: _Session, version: str) -> SourceDocument | None:
        """The page as a document; None when it is gone by the time its blocks are read."""
        blocks = session.blocks(page.id)
        if blocks is None:
            return None
        body = blocks_markdown(blocks, tree.link)
        if page.properties:
            body = f"{page.properties}\n\n{body}"
        return SourceDocument(
            doc_id=page.id,
            path=_path(page),
            title=page.title,
            content=page_markdown(tree.ancestors(page), body).encode(),
            url=page.url,
            updated=page.edited,
            tags=page.tags,
            version=version,
        )

    def client(self) -> Client:
        return Client(
            auth=self._token,
            base_url=self.api_url,
            notion_version=NOTION_VERSION,
            timeout_ms=TIMEOUT_MS,
            retry=False,  # 429s are waited out here, within the sync's budget, and counted
            logger=logging.getLogger(f"{__name__}.sdk"),
            log_level=logging.CRITICAL,  # failures are reported once, as SourceErrors
        )


def _path(page: _Page) -> str:
    return f"{slug(page.title)}-{page.id.replace('-', '')}.md"


def _time(value: Any) -> datetime:
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _page(raw: Mapping[str, Any]) -> _Page:
    parent = raw.get("parent") or {}
    kind = str(parent.get("type", "workspace"))
    parent_id = parent.get(kind) if kind != "workspace" else None
    title, tags, props = properties_markdown(raw.get("properties") or {})
    is_row = kind in ("data_source_id", "database_id")
    return _Page(
        id=str(raw["id"]),
        title=title.strip() or "Untitled",
        url=raw.get("url") if isinstance(raw.get("url"), str) else None,
        edited=str(raw.get("last_edited_time", "")),
        parent=(kind, str(parent_id) if parent_id else None),
        database=str(parent.get("database_id")) if is_row and parent.get("database_id") else None,
        tags=tags if is_row else (),
        properties=props if is_row else "",
    )


class _Tree:
    """The pages and data sources search listed, and where each sits: ancestors' titles and scope."""

    def __init__(self, session: _Session) -> None:
        self.session = session
        self.pages = {r["id"]: _page(r) for r in session.search("page") if not _trashed(r)}
        self.sources = {str(s["id"]): s for s in session.search("data_source")}

    def add(self, raw: Mapping[str, Any]) -> _Page:
        page = _page(raw)
        self.pages[page.id] = page
        return page

    def chain(self, page: _Page) -> list[tuple[str, str]]:
        """(id, title) of each container above the page, the nearest last; stops where the
        integration cannot see further."""
        found: list[tuple[str, str]] = []
        kind, parent = page.parent
        while parent and len(found) < 50:
            if kind == "page_id":
                above = self.pages.get(parent)
                found.append((parent, above.title if above else ""))
                if above is None:
                    break
                kind, parent = above.parent
            elif kind == "data_source_id":
                source = self.sources.get(parent) or {}
                database = str((source.get("parent") or {}).get("database_id") or page.database or "")
                found.append((database, plain(source.get("title"))))
                grand = source.get("database_parent") or {}
                kind = str(grand.get("type", "workspace"))
                parent = grand.get(kind) if kind != "workspace" else None
            elif kind == "block_id":
                kind, parent = self.session.block_parent(parent)
            else:
                break
        return found[::-1]

    def ancestors(self, page: _Page) -> list[str]:
        return [title for _, title in self.chain(page) if title]

    def in_scope(self, page_id: str, roots: Mapping[str, str]) -> bool:
        if not roots or page_id in roots:
            return True
        page = self.pages[page_id]
        return page.database in roots or any(i in roots for i, _ in self.chain(page))

    def link(self, block_id: str, title: str) -> str:
        page = self.pages.get(block_id)
        url = page.url if page and page.url else f"https://www.notion.so/{block_id.replace('-', '')}"
        return f"[{title}]({url})"


def _trashed(raw: Mapping[str, Any]) -> bool:
    return bool(raw.get("in_trash") or raw.get("archived"))


class _Session:
    """One sync's requests: the SDK client, the retry budget, and the errors mapped to SourceErrors."""

    def __init__(self, conn: NotionConnector, block_parents: dict[str, list[Any]]) -> None:
        self.conn = conn
        self.block_parents = block_parents  # block id -> [parent type, parent id], kept in the cursor
        self.budget = RetryBudget(conn.prefix, interval=conn.pace, sleep=conn._sleep)
        self.notes: list[str] = []
        self.client = conn.client()

    def __enter__(self) -> _Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()

    def check_root(self, root: str, kind: str) -> None:
        if kind == "page":
            self.call(lambda: self.client.pages.retrieve(page_id=root), f"root page {root}")
        else:
            self.call(lambda: self.client.databases.retrieve(database_id=root), f"root database {root}")

    def search(self, kind: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        body: dict[str, Any] = {"filter": {"property": "object", "value": kind}, "page_size": PAGE_SIZE}
        body["sort"] = {"direction": "descending", "timestamp": "last_edited_time"}
        while True:
            answer = self.call(lambda: self.client.search(**body), "the search")
            found.extend(r for r in answer.get("results", []) if r.get("object") == kind)
            if not answer.get("has_more") or not answer.get("next_cursor"):
                return found
            body["start_cursor"] = answer["next_cursor"]

    def blocks(self, block_id: str, depth: int = 0, budget: list[int] | None = None) -> list[dict[str, Any]] | None:
        """The block's children, with their own children under "children" (child pages excepted); None
        when the page (depth 0) is gone since the listing."""
        budget = [MAX_BLOCKS] if budget is None else budget
        children: list[dict[str, Any]] = []
        start: str | None = None
        while budget[0] > 0:
            query: dict[str, Any] = {"block_id": block_id, "start_cursor": start, "page_size": PAGE_SIZE}
            answer = self.call(partial(self.client.blocks.children.list, **query), f"page {block_id}", True)
            if answer is None:  # deleted or unshared since the listing
                if depth == 0:
                    return None
                break
            results = answer.get("results", [])[: budget[0]]
            budget[0] -= len(results)
            children.extend(results)
            start = answer.get("next_cursor")
            if not answer.get("has_more") or not start:
                break
        if budget[0] <= 0:
            self.notes.append(f"page {block_id}: only its first {MAX_BLOCKS} blocks were read")
        for child in children:
            nested = child.get("has_children") and child.get("type") not in ("child_page", "child_database")
            if nested and depth < MAX_DEPTH and budget[0] > 0:
                child["children"] = self.blocks(str(child["id"]), depth + 1, budget) or []
        return children

    def block_parent(self, block_id: str) -> tuple[str, str | None]:
        if block_id not in self.block_parents:
            block = self.call(lambda: self.client.blocks.retrieve(block_id=block_id), f"block {block_id}", True)
            parent = (block or {}).get("parent") or {}
            kind = str(parent.get("type", "workspace"))
            self.block_parents[block_id] = [kind, parent.get(kind) if kind != "workspace" else None]
        kind, parent_id = self.block_parents[block_id]
        return str(kind), parent_id

    def still_there(self, page_id: str, tree: _Tree, roots: Mapping[str, str]) -> bool:
        """Whether a known page the search did not list is still shared and in scope (search lags)."""
        raw = self.call(lambda: self.client.pages.retrieve(page_id=page_id), f"page {page_id}", missing_ok=True)
        if raw is None or _trashed(raw):
            return False
        tree.add(raw)
        return tree.in_scope(page_id, roots)

    def call(self, send: Callable[[], Any], what: str, missing_ok: bool = False) -> Any:
        for attempt in itertools.count():
            self.budget.request()
            try:
                return send()
            except APIResponseError as exc:
                if exc.status == 429:
                    self.budget.rate_limited(retry_after_seconds(exc.headers.get("retry-after")))
                elif exc.status >= 500:
                    self.budget.server_error(attempt, f"Notion answered {exc.status} for {what}")
                elif exc.status == 404 and missing_ok:
                    return None
                else:
                    raise self.refused(exc.status, what) from None
            except HTTPResponseError as exc:  # not Notion's JSON error: a proxy or a wrong api_url
                if exc.status < 500:
                    raise SourceUnreachableError(
                        f"{self.conn.prefix}{self.conn.host} answered {exc.status} without Notion's error: "
                        "check 'api_url'"
                    ) from None
                self.budget.server_error(attempt, f"{self.conn.host} answered {exc.status} for {what}")
            except RequestTimeoutError:
                self.budget.server_error(attempt, f"{self.conn.host} did not answer within {TIMEOUT_MS // 1000} s")
            except httpx.TransportError as exc:
                raise SourceUnreachableError(
                    f"{self.conn.prefix}cannot reach {self.conn.host} ({type(exc).__name__}): check the network "
                    "and 'api_url'"
                ) from None
        raise AssertionError("unreachable")

    def refused(self, status: int, what: str) -> SourceError:
        prefix, variable = self.conn.prefix, self.conn.token_env
        if status == 401:
            return SourceAuthError(
                f"{prefix}Notion refused the integration token in {variable} ('token_env') (401): it is wrong or "
                f"was revoked; copy the integration's Internal Integration Secret (notion.so/profile/integrations)"
                f" into {variable}"
            )
        if status == 403:
            return SourceAuthError(
                f"{prefix}Notion refused to show {what} (403): give the integration the 'Read content' capability"
                " (notion.so/profile/integrations > the integration > Capabilities)"
            )
        if status == 404:
            return SourceNotFoundError(
                f"{prefix}{what} does not exist or is not shared with the integration: share it (the page's "
                "••• menu > Connections > add the integration) or fix 'pages' / 'databases'"
            )
        return SourceUnreachableError(f"{prefix}Notion answered {status} for {what}")

"""A fake Notion API (version 2025-09-03) over real HTTP, for tests.

Serves what the connector uses, in the documented shapes: `POST /v1/search` (filter by object, sort by
last_edited_time, `start_cursor`/`page_size` <= 100, `has_more`/`next_cursor`), `GET /v1/pages/{id}`,
`GET /v1/databases/{id}`, `GET /v1/blocks/{id}` and `GET /v1/blocks/{id}/children` (paged the same way).
Only what is shared with the integration is visible (404 `object_not_found` otherwise); pages in the
trash are left out of search. Every request needs the bearer token and a Notion-Version header; 429
`rate_limited` with Retry-After is scriptable; `expire()` revokes the token (401 `unauthorized`).

    with FakeNotion() as notion:
        root = notion.add_page("Handbook", [heading(1, "Welcome"), paragraph("Hello")])
        notion.add_page("Deploy", [bullet("run it")], parent=root)
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from support.http_fakes import FakeHandler, FakeServer, ScriptedRefusals

TOKEN = "ntn_test_integration_secret_51"
VERSION = "2025-09-03"


def text(content: str, **annotations: bool) -> list[dict[str, Any]]:
    marks = {"bold": False, "italic": False, "strikethrough": False, "underline": False, "code": False}
    marks |= annotations
    return [
        {
            "type": "text",
            "text": {"content": content, "link": None},
            "annotations": marks | {"color": "default"},
            "plain_text": content,
            "href": None,
        }
    ]


def block(kind: str, children: list[dict[str, Any]] | None = None, **data: Any) -> dict[str, Any]:
    """A block as the API returns it; `children` are served by blocks/{id}/children, not inline."""
    return {"object": "block", "id": str(uuid.uuid4()), "type": kind, kind: data, "_children": children or []}


def paragraph(content: str) -> dict[str, Any]:
    return block("paragraph", rich_text=text(content), color="default")


def heading(level: int, content: str) -> dict[str, Any]:
    return block(f"heading_{level}", rich_text=text(content), is_toggleable=False, color="default")


def bullet(content: str, children: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return block("bulleted_list_item", children, rich_text=text(content), color="default")


def _child_page(page_id: str, title: str) -> dict[str, Any]:
    return {"object": "block", "id": page_id, "type": "child_page", "child_page": {"title": title}, "_children": []}


@dataclass
class Page:
    id: str
    title: str
    blocks: list[dict[str, Any]]
    parent: dict[str, Any]
    edited: str = "2026-01-05T10:00:00.000Z"
    in_trash: bool = False
    shared: bool = True
    indexed: bool = True  # False: search has not caught up with it yet (Notion's search index lags)
    properties: dict[str, Any] = field(default_factory=dict)  # a row's properties besides its title


@dataclass
class Database:
    id: str
    source_id: str
    title: str
    parent: dict[str, Any]


class FakeNotion(ScriptedRefusals, FakeServer):
    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.pages: dict[str, Page] = {}
        self.databases: dict[str, Database] = {}
        self.requests: list[str] = []  # "METHOD path" of every request
        self.arrivals: list[float] = []  # time.monotonic() of each
        self.after_search: Callable[[], None] | None = None  # runs after each search answered (a race)
        self._clock = itertools.count(1)
        self._lock = threading.Lock()
        super().__init__(_Handler, "fake-notion")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add_page(self, title: str, blocks: list[dict[str, Any]], parent: str | None = None, **kw: Any) -> str:
        page_id = str(uuid.uuid4())
        where: dict[str, Any]
        if parent in self.databases:
            db = self.databases[parent]
            where = {"type": "data_source_id", "data_source_id": db.source_id, "database_id": db.id}
        else:
            where = {"type": "page_id", "page_id": parent} if parent else {"type": "workspace", "workspace": True}
        self.pages[page_id] = Page(page_id, title, blocks, where, **kw)
        if parent in self.pages:  # a subpage is also a child_page block of its parent
            self.pages[parent].blocks.append(_child_page(page_id, title))
        return page_id

    def move(self, page_id: str, new_parent: str) -> None:
        """Moves a page under another page (its own last_edited_time is left as it was)."""
        page = self.pages[page_id]
        old = page.parent.get("page_id")
        if old in self.pages:
            self.pages[old].blocks = [b for b in self.pages[old].blocks if b["id"] != page_id]
        page.parent = {"type": "page_id", "page_id": new_parent}
        self.pages[new_parent].blocks.append(_child_page(page_id, page.title))

    def add_database(self, title: str, parent: str) -> str:
        db = Database(str(uuid.uuid4()), str(uuid.uuid4()), title, {"type": "page_id", "page_id": parent})
        self.databases[db.id] = db
        return db.id

    def edit(self, page_id: str, **changes: Any) -> None:
        page = self.pages[page_id]
        for key, value in changes.items():
            setattr(page, key, value)
        page.edited = f"2026-02-01T09:{next(self._clock) % 60:02d}:00.000Z"  # Notion rounds to the minute

    def visible(self, page_id: str) -> Page | None:
        page = self.pages.get(page_id)
        return page if page is not None and page.shared else None

    def find_block(self, block_id: str) -> tuple[dict[str, Any], str] | None:
        """The block and the id of its parent (page or block)."""

        def walk(blocks: list[dict[str, Any]], parent: str) -> tuple[dict[str, Any], str] | None:
            for b in blocks:
                if b["id"] == block_id and b["type"] != "child_page":  # a subpage is served as a page
                    return b, parent
                found = walk(b["_children"], b["id"])
                if found:
                    return found
            return None

        for page in self.pages.values():
            found = walk(page.blocks, page.id)
            if found and page.shared:
                return found
        return None


def error(status: int, code: str, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"object": "error", "status": status, "code": code, "message": message, "request_id": "r-1"}


class _Handler(FakeHandler[FakeNotion]):
    def do_GET(self) -> None:
        self._serve("GET", None)

    def do_POST(self) -> None:
        self._serve("POST", json.loads(self.read_body() or b"{}"))

    def _serve(self, method: str, body: Any) -> None:
        fake, parts = self.fake, urlsplit(self.path)
        with fake._lock:
            fake.requests.append(f"{method} {parts.path}")
            fake.arrivals.append(time.monotonic())
            if self.headers.get("Authorization") != f"Bearer {fake.token}":
                status, payload = error(401, "unauthorized", "API token is invalid.")
            elif self.headers.get("Notion-Version") != VERSION:
                status, payload = error(400, "missing_version", "Notion-Version header failed validation.")
            elif (refused := fake.refusal()) == 429:
                status, payload = error(429, "rate_limited", "You have been rate limited.")
            elif refused is not None:  # 403: the integration may not read content
                code = {403: "restricted_resource", 500: "internal_server_error"}.get(refused, "service_unavailable")
                status, payload = error(refused, code, "scripted failure")
            else:
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                status, payload = _Routes(fake).route(method, parts.path, query, body)
        headers = {"Retry-After": fake.retry_after} if status == 429 else {}
        self.send_json(status, payload, headers)


class _Routes:
    def __init__(self, fake: FakeNotion) -> None:
        self.fake = fake

    def route(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        parts = path.strip("/").split("/")
        if method == "POST" and parts == ["v1", "search"]:
            answer = self.search(body or {})
            if self.fake.after_search is not None:
                self.fake.after_search()
            return 200, answer
        if method == "GET" and len(parts) == 3 and parts[1] == "pages":
            page = self.fake.visible(parts[2])
            return (200, self.page(page)) if page else error(404, "object_not_found", "Could not find page.")
        if method == "GET" and len(parts) == 3 and parts[1] == "databases" and parts[2] in self.fake.databases:
            db = self.fake.databases[parts[2]]
            return 200, {"object": "database", "id": db.id, "title": text(db.title), "parent": db.parent}
        if method == "GET" and len(parts) == 4 and parts[1] == "blocks" and parts[3] == "children":
            return self.children(parts[2], query)
        if method == "GET" and len(parts) == 3 and parts[1] == "blocks":
            found = self.fake.find_block(parts[2])
            if found is None:
                return error(404, "object_not_found", "Could not find block.")
            kind = "page_id" if found[1] in self.fake.pages else "block_id"
            return 200, _public(found[0]) | {"parent": {"type": kind, kind: found[1]}}
        return error(404, "object_not_found", f"no route {method} {path}")

    def page(self, page: Page) -> dict[str, Any]:
        title = {"id": "title", "type": "title", "title": text(page.title)}
        return {
            "object": "page",
            "id": page.id,
            "created_time": "2025-12-01T08:00:00.000Z",
            "last_edited_time": page.edited,
            "last_edited_by": {"object": "user", "id": "u-1"},
            "parent": page.parent,
            "archived": page.in_trash,
            "in_trash": page.in_trash,
            "properties": {"Name": title} | page.properties,
            "url": f"https://www.notion.so/{page.title.replace(' ', '-')}-{page.id.replace('-', '')}",
        }

    def search(self, body: dict[str, Any]) -> dict[str, Any]:
        wanted = (body.get("filter") or {}).get("value")
        if wanted == "data_source":
            items = [
                {
                    "object": "data_source",
                    "id": db.source_id,
                    "title": text(db.title),
                    "parent": {"type": "database_id", "database_id": db.id},
                    "database_parent": db.parent,
                }
                for db in self.fake.databases.values()
            ]
        else:
            pages = [p for p in self.fake.pages.values() if p.shared and p.indexed and not p.in_trash]
            pages.sort(key=lambda p: p.edited, reverse=(body.get("sort") or {}).get("direction") == "descending")
            items = [self.page(p) for p in pages]
        return _paged(items, body.get("start_cursor"), body.get("page_size"), "page_or_data_source")

    def children(self, block_id: str, query: dict[str, str]) -> tuple[int, Any]:
        page = self.fake.visible(block_id)
        found = None if page else self.fake.find_block(block_id)
        if page is None and found is None:
            return error(404, "object_not_found", "Could not find block.")
        blocks = page.blocks if page else found[0]["_children"] if found else []
        return 200, _paged([_public(b) for b in blocks], query.get("start_cursor"), query.get("page_size"), "block")


def _public(b: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in b.items() if k != "_children"} | {"has_children": bool(b["_children"])}


def _paged(items: list[Any], cursor: str | None, size: Any, kind: str) -> dict[str, Any]:
    start = int(cursor) if cursor else 0
    limit = min(int(size or 100), 100)
    window = items[start : start + limit]
    more = start + limit < len(items)
    return {
        "object": "list",
        "results": window,
        "next_cursor": str(start + limit) if more else None,
        "has_more": more,
        "type": kind,
        kind: {},
    }

"""A fake Confluence REST API (v1, as Cloud and Data Center serve it) over real HTTP, for tests.

Serves what the connector uses, in the documented shapes: `GET /rest/api/space/{key}`,
`GET /rest/api/content?spaceKey&type&status&expand&start&limit` (paged with `start`/`limit` and
`_links.next`; `limit` capped as Data Center caps it: 50 with a body expansion, 200 with others, 1,000
with none) and `GET /rest/api/content/{id}?expand=body.storage&status`. Every request is checked for
credentials (basic auth for Cloud, bearer for Data Center) and recorded; 429 with Retry-After is
scriptable; `expire()` makes the token invalid (401).

    with FakeConfluence(cloud=True) as fake:
        fake.add_space("ENG")
        root = fake.add_page("ENG", "Runbooks", "<p>...</p>")
        fake.add_page("ENG", "Deploy", "<h1>Steps</h1>", parent=root, labels=["ops"])
        ... connector(spec(url=fake.url, ...)) ...
"""

from __future__ import annotations

import base64
import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from support.http_fakes import FakeHandler, FakeServer, ScriptedRefusals

EMAIL = "bot@example.com"
TOKEN = "atl-test-token-4f9c2e"


@dataclass
class Page:
    id: str
    space: str
    title: str
    body: str
    parent: str | None = None
    labels: list[str] = field(default_factory=list)
    status: str = "current"  # current | archived
    version: int = 1
    when: str = "2026-01-05T10:00:00.000Z"
    by: str = "Ada Lovelace"


class FakeConfluence(ScriptedRefusals, FakeServer):
    def __init__(self, cloud: bool = True, token: str = TOKEN, email: str = EMAIL, site_links: bool = False) -> None:
        self.cloud, self.token, self.email = cloud, token, email
        self.site_links = site_links  # `_links.next` relative to the site ("/wiki/rest/..."), not the context
        self.context = "/wiki" if cloud else "/confluence"
        self.spaces: set[str] = set()
        self.pages: dict[str, Page] = {}
        self.requests: list[str] = []  # path?query of every request
        self.after_listing: Callable[[], None] | None = None  # runs after each listing answered (a race)
        self._ids = itertools.count(10001)
        self._lock = threading.Lock()
        super().__init__(_Handler, "fake-confluence")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.context}"

    def add_space(self, key: str) -> None:
        self.spaces.add(key)

    def add_page(self, space: str, title: str, body: str, parent: str | None = None, **kw: Any) -> str:
        page = Page(str(next(self._ids)), space, title, body, parent, **kw)
        self.pages[page.id] = page
        return page.id

    def edit(self, page_id: str, **changes: Any) -> None:
        """A new version of the page (body/title edits); moves and labels are set on the Page directly."""
        page = self.pages[page_id]
        for key, value in changes.items():
            setattr(page, key, value)
        page.version += 1
        page.when = "2026-02-01T09:30:00.000Z"

    def ancestors(self, page: Page) -> list[Page]:
        chain: list[Page] = []
        parent = page.parent
        while parent is not None and parent in self.pages:
            chain.insert(0, self.pages[parent])
            parent = self.pages[parent].parent
        return chain


class _Handler(FakeHandler[FakeConfluence]):
    def do_GET(self) -> None:
        fake = self.fake
        parts = urlsplit(self.path)
        path = parts.path.removeprefix(fake.context)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        with fake._lock:
            fake.requests.append(path + ("?" + parts.query if parts.query else ""))
            if not self._authorised():
                # Cloud and Data Center answer a bad or expired token with 401 and a JSON message
                self.send_json(401, {"statusCode": 401, "message": "Current user not permitted to use Confluence"})
                return
            refused = fake.refusal()  # 403: no permission to use Confluence
            if refused == 429:
                self.send_json(429, {"statusCode": 429, "message": "Rate limited"}, {"Retry-After": fake.retry_after})
                return
            if refused is not None:
                self.send_json(refused, {"statusCode": refused, "message": "scripted failure"})
                return
            status, payload = self._route(path, query)
        self.send_json(status, payload)

    def _authorised(self) -> bool:
        fake, header = self.fake, self.headers.get("Authorization", "")
        if fake.cloud:
            expected = base64.b64encode(f"{fake.email}:{fake.token}".encode()).decode()
            return header == f"Basic {expected}"
        return header == f"Bearer {fake.token}"

    def _route(self, path: str, query: dict[str, str]) -> tuple[int, Any]:
        fake = self.fake
        if path.startswith("/rest/api/space/"):
            key = path.rsplit("/", 1)[1]
            if key not in fake.spaces:
                return 404, {"statusCode": 404, "message": f"No space with key : {key}"}
            return 200, {"key": key, "name": key, "type": "global", "_links": {"webui": f"/spaces/{key}"}}
        if path == "/rest/api/content":
            listing = self._listing(query)
            if fake.after_listing is not None:
                fake.after_listing()
            return 200, listing
        if path.startswith("/rest/api/content/"):
            page = fake.pages.get(path.rsplit("/", 1)[1])
            if page is None or page.status != query.get("status", "current"):
                return 404, {"statusCode": 404, "message": "No content found with id"}
            return 200, self._content(page, query.get("expand", ""))
        return 404, {"statusCode": 404, "message": f"no route {path}"}

    def _listing(self, query: dict[str, str]) -> dict[str, Any]:
        fake, expand = self.fake, query.get("expand", "")
        cap = 50 if "body" in expand else 200 if expand else 1000
        start, limit = int(query.get("start", 0)), min(int(query.get("limit", 25)), cap)
        wanted = [
            p
            for p in fake.pages.values()
            if p.space == query.get("spaceKey") and p.status == query.get("status", "current")
        ]
        window = wanted[start : start + limit]
        links: dict[str, str] = {"base": fake.url}
        links["context"] = fake.context
        if start + limit < len(wanted):
            following = "/rest/api/content?" + urlencode(query | {"start": start + limit, "limit": limit})
            links["next"] = fake.context + following if fake.site_links else following
        results = [self._content(p, expand) for p in window]
        return {"results": results, "start": start, "limit": limit, "size": len(results), "_links": links}

    def _content(self, page: Page, expand: str) -> dict[str, Any]:
        fake = self.fake
        item: dict[str, Any] = {"id": page.id, "type": "page", "status": page.status, "title": page.title}
        fields = set(expand.split(","))
        if "version" in fields:
            item["version"] = {"number": page.version, "when": page.when, "by": {"displayName": page.by}}
        if "ancestors" in fields:
            item["ancestors"] = [{"id": a.id, "type": "page", "title": a.title} for a in fake.ancestors(page)]
        if "metadata.labels" in fields:
            labels = [{"prefix": "global", "name": name, "id": str(i)} for i, name in enumerate(page.labels)]
            item["metadata"] = {"labels": {"results": labels, "size": len(labels)}}
        for fmt in ("storage", "view"):
            if f"body.{fmt}" in fields:
                item["body"] = {fmt: {"value": page.body, "representation": fmt}}
        slug = page.title.replace(" ", "+")
        webui = f"/spaces/{page.space}/pages/{page.id}/{slug}" if fake.cloud else f"/display/{page.space}/{slug}"
        item["_links"] = {"webui": webui, "self": f"{fake.url}/rest/api/content/{page.id}"}
        return item

"""Confluence (Cloud, and Data Center/Server) through its REST API, with atlassian-python-api's client.

Every sync lists the chosen spaces' pages with light expansions (version, ancestors, labels: no body;
Data Center serves up to 200 of those per request), compares each page's version marker with what the
shared state knows, and fetches the body of new or changed pages only. The listing is complete, so pages
deleted, moved out of the spaces or hidden by a permission change are the known ids it no longer lists
(`listed_all`). The version marker covers what a last-modified query would miss: a page moved under
another parent, an ancestor renamed, a label added (none of them is a new page version). An unchanged
space of 1,000 pages costs one space check and 5 + 1 listing requests (current and archived).

Auth: Cloud takes the account's email (`username`) and an API token (basic auth); Data Center takes a
personal access token (bearer), or a username with a password or token.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from atlassian import Confluence

from retrieval.errors import SourceAuthError, SourceError, SourceNotFoundError, SourceUnreachableError
from retrieval.retry_after import retry_after_seconds
from retrieval.sources.base import Changes, Cursor, KnownDocument, SourceDocument
from retrieval.sources.confluence_html import body_markdown
from retrieval.sources.spec import SourceSpec
from retrieval.sources.wiki import RetryBudget, page_markdown, slug

KEYS = {"url", "cloud", "spaces", "username", "token_env", "include_archived", "labels", "body_format"}
LIST_LIMIT = 200  # Data Center's cap for content listings with expansions other than the body
LIST_EXPAND = "version,ancestors,metadata.labels"
TIMEOUT = 30  # seconds per request


def connector(spec: SourceSpec, work_dir: Path) -> ConfluenceConnector:
    return ConfluenceConnector(spec)


@dataclass(frozen=True)
class _Page:
    """A page as the listing shows it (no body)."""

    id: str
    space: str
    title: str
    status: str  # current | archived
    version: str  # the marker compared with the shared state's
    ancestors: tuple[str, ...]
    labels: tuple[str, ...]
    updated: str | None
    owner: str | None
    url: str | None

    @property
    def path(self) -> str:
        folder = "".join(c if c.isalnum() or c in "._-" else "_" for c in self.space)
        return f"{folder}/{slug(self.title)}-{self.id}.md"


class ConfluenceConnector:
    def __init__(self, spec: SourceSpec, sleep: Callable[[float], None] = time.sleep) -> None:
        unknown = sorted(set(spec.settings) - KEYS)
        if unknown:
            raise spec.error(f"unknown setting {unknown[0]!r}: use {', '.join(sorted(KEYS))}")
        self.spec, self._sleep = spec, sleep
        self.prefix = f"source {spec.name!r} ({spec.kind}): "
        url = spec.get("url", str).strip().rstrip("/")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.query:
            raise spec.error("'url' must be the http(s) address of Confluence, without credentials or query")
        self.host = parts.hostname
        self.cloud = spec.get("cloud", bool, (parts.hostname or "").endswith(".atlassian.net"))
        if self.cloud and not parts.path:
            url += "/wiki"  # Cloud serves Confluence and its REST API under /wiki
        self.url = url
        self.spaces = spec.strings("spaces")
        if not self.spaces:
            raise spec.error("'spaces' must list at least one space key")
        self.labels = frozenset(label.lower() for label in spec.strings("labels"))  # Confluence's are lower case
        self.include_archived = spec.get("include_archived", bool, True)
        self.body_format = spec.get("body_format", str, "storage")
        if self.body_format not in ("storage", "view"):
            raise spec.error("'body_format' must be storage or view")
        self.username = spec.settings.get("username")
        if self.username is not None and (not isinstance(self.username, str) or not self.username.strip()):
            raise spec.error("'username' must be the account's email (Cloud) or user name")
        if self.cloud and not self.username:
            raise spec.error("Confluence Cloud needs 'username' (the account's email) with its API token")
        self.token_env = str(spec.settings.get("token_env", ""))
        self._token = spec.secret("token_env")

    def changes(self, cursor: Cursor, known: Mapping[str, KnownDocument]) -> Changes:
        session = _Session(self)
        try:
            return self._changes(session, known)
        finally:
            session.client.close()

    def _changes(self, session: _Session, known: Mapping[str, KnownDocument]) -> Changes:
        pages: list[_Page] = []
        for space in self.spaces:
            session.check_space(space)
            for status in ("current", "archived") if self.include_archived else ("current",):
                pages.extend(session.list_pages(space, status))
        if self.labels:
            pages = [p for p in pages if self.labels.intersection(label.lower() for label in p.labels)]
        changes = Changes(listed_all=True, cursor={"listed_at": datetime.now(UTC).isoformat(timespec="seconds")})
        for page in pages:
            seen = known.get(page.id)
            if seen is not None and seen.version == page.version and seen.path == page.path:
                changes.unchanged.append(page.id)
                continue
            body = session.body(page)
            if body is None:  # gone between the listing and now: not listed, so the sync drops it
                changes.notes.append(f"page {page.id} vanished during the sync")
                continue
            changes.upserts.append(self._document(page, body))
        changes.requests = session.budget.requests
        return changes

    def _document(self, page: _Page, body_html: str) -> SourceDocument:
        return SourceDocument(
            doc_id=page.id,
            path=page.path,
            title=page.title,
            content=page_markdown(page.ancestors, body_markdown(body_html)).encode(),
            url=page.url,
            updated=page.updated,
            owner=page.owner,
            tags=page.labels,
            status="archived" if page.status == "archived" else None,
            version=page.version,
        )

    def client(self) -> Any:
        auth: dict[str, Any] = {"username": self.username, "password": self._token} if self.username else {}
        make: Callable[..., Any] = Confluence  # the library is untyped
        return make(
            url=self.url,
            cloud=self.cloud,
            token=None if self.username else self._token,
            timeout=TIMEOUT,
            retry_with_header=False,  # 429s are waited out here, within the sync's budget, and counted
            **auth,
        )


class _Session:
    """One sync's requests: the client, the retry budget, and the errors mapped to SourceErrors."""

    def __init__(self, conn: ConfluenceConnector) -> None:
        self.conn = conn
        self.client = conn.client()
        self.budget = RetryBudget(conn.prefix, sleep=conn._sleep)

    def check_space(self, key: str) -> None:
        self.get(f"rest/api/space/{quote(key, safe='~')}", {}, f"space '{key}'")

    def list_pages(self, space: str, status: str) -> list[_Page]:
        params: dict[str, Any] = {"spaceKey": space, "type": "page", "status": status}
        params |= {"expand": LIST_EXPAND, "limit": LIST_LIMIT, "start": 0}
        path: str | None = "rest/api/content"
        pages: list[_Page] = []
        while path is not None:
            data = self.get(path, params, f"space '{space}'", absolute=path.startswith("http"))
            base = _links(data).get("base") or self.conn.url
            pages.extend(_page(item, space, base) for item in data.get("results", []))
            following = _links(data).get("next")
            path, params = (self._next_url(following), {}) if following else (None, {})
        return pages

    def _next_url(self, link: str) -> str:
        """The next page's link, relative to Confluence's context path ("/rest/api/...") or to the site
        ("/wiki/rest/api/..."), joined to the configured URL: never followed to another host."""
        parts = urlsplit(self.conn.url)
        if parts.path and link.startswith(parts.path + "/rest/"):
            return f"{parts.scheme}://{parts.netloc}{link}"
        return self.conn.url + "/" + link.lstrip("/")

    def body(self, page: _Page) -> str | None:
        params = {"expand": f"body.{self.conn.body_format}", "status": page.status}
        data = self.get(f"rest/api/content/{page.id}", params, f"page {page.id}", missing_ok=True)
        if data is None:
            return None
        value = data.get("body", {}).get(self.conn.body_format, {}).get("value", "")
        return value if isinstance(value, str) else ""

    def get(
        self, path: str, params: dict[str, Any], what: str, absolute: bool = False, missing_ok: bool = False
    ) -> Any:
        for attempt in itertools.count():
            self.budget.request()
            try:
                resp = self.client.get(path, params=params or None, absolute=absolute, advanced_mode=True)
            except requests.Timeout:
                self.budget.server_error(attempt, f"{self.conn.host} did not answer within {TIMEOUT} s")
                continue
            except requests.RequestException as exc:
                reason = type(exc).__name__  # never the exception's text: it may hold the request's URL
                raise SourceUnreachableError(
                    f"{self.conn.prefix}cannot reach {self.conn.host} ({reason}): check 'url' and the network"
                ) from None
            if resp.status_code == 429:
                self.budget.rate_limited(retry_after_seconds(resp.headers.get("Retry-After")))
            elif resp.status_code >= 500:
                self.budget.server_error(attempt, f"{self.conn.host} answered {resp.status_code}")
            elif resp.status_code == 404 and missing_ok:
                return None
            elif resp.status_code >= 400:
                raise self.refused(resp.status_code, what)
            else:
                return _json(resp, self.conn.prefix)
        raise AssertionError("unreachable")

    def refused(self, status: int, what: str) -> SourceError:
        conn, variable = self.conn, self.conn.token_env
        if status == 401:
            if conn.cloud:
                fix = f"create an API token at id.atlassian.com (Security > API tokens) for {conn.username}"
                return SourceAuthError(
                    f"{conn.prefix}Confluence refused the API token in {variable} ('token_env') for 'username' (401):"
                    f" it is wrong, expired or revoked; {fix} and set {variable}"
                )
            return SourceAuthError(
                f"{conn.prefix}Confluence refused the token in {variable} ('token_env') (401): it is wrong or "
                f"expired; create a personal access token (profile > Personal Access Tokens) and set {variable}"
            )
        if status == 403:
            return SourceAuthError(
                f"{conn.prefix}Confluence refused access to {what} (403): give the account the 'View' permission "
                "on the space (and access to Confluence itself)"
            )
        if status == 404:
            return SourceNotFoundError(
                f"{conn.prefix}{what} not found, or the account cannot see it: fix 'spaces' or give the account "
                "the 'View' permission on it"
            )
        return SourceUnreachableError(f"{conn.prefix}Confluence answered {status} for {what}")


def _json(resp: requests.Response, prefix: str) -> Any:
    try:
        return resp.json()
    except ValueError:
        raise SourceUnreachableError(
            f"{prefix}the answer is not Confluence's JSON: check 'url' (e.g. https://example.atlassian.net/wiki "
            "or https://confluence.example.com)"
        ) from None


def _links(data: Any) -> dict[str, str]:
    links = data.get("_links") if isinstance(data, dict) else None
    return {k: v for k, v in links.items() if isinstance(v, str)} if isinstance(links, dict) else {}


def _page(item: dict[str, Any], space: str, base: str) -> _Page:
    version = item.get("version") or {}
    ancestors = tuple(str(a.get("title", "")) for a in item.get("ancestors") or [])
    labels = tuple(
        str(label.get("name")) for label in (item.get("metadata") or {}).get("labels", {}).get("results", [])
    )
    title, status = str(item.get("title") or item.get("id")), str(item.get("status", "current"))
    webui = _links(item).get("webui")
    # The marker changes with a new version and with what is not one: a move, a renamed ancestor, labels.
    shape = hashlib.sha256(json.dumps([title, ancestors, sorted(labels)]).encode()).hexdigest()[:16]
    return _Page(
        id=str(item["id"]),
        space=space,
        title=title,
        status=status,
        version=f"{version.get('number', 0)}:{status}:{shape}",
        ancestors=ancestors,
        labels=labels,
        updated=version.get("when"),
        owner=(version.get("by") or {}).get("displayName"),
        url=base.rstrip("/") + webui if webui else None,
    )

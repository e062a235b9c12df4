"""A docs site on a loopback port for the website connector's tests and bench: the test sets its pages
(HTML, redirects, other files), the site answers conditional requests with 304, and logs every request
it gets, so a test can prove what the crawler asked for and what it downloaded."""

from __future__ import annotations

import email.utils
import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from urllib.parse import urlsplit

from support.http_fakes import FakeServer, QuietHandler


@dataclass
class Resource:
    body: bytes = b""
    content_type: str = "text/html; charset=utf-8"
    status: int = 200
    location: str | None = None  # a redirect's target
    modified: int = 0  # seconds since the epoch: the Last-Modified it is served with
    with_length: bool = True  # False: no Content-Length, the body streamed until the connection closes
    retry_after: str | None = None

    @property
    def etag(self) -> str:
        return '"' + hashlib.sha256(self.body).hexdigest()[:16] + '"'


@dataclass(frozen=True)
class Hit:
    path: str  # with its query
    headers: dict[str, str]  # lower-case names
    status: int
    body_size: int  # the size of the body it answered with (0 for a 304 or a redirect)


@dataclass
class DocsSite:
    resources: dict[str, Resource] = field(default_factory=dict)
    hits: list[Hit] = field(default_factory=list)
    token: str | None = None  # when set, every request needs "Authorization: Bearer <token>"
    # the next requests' answers instead of the resource: (status, Retry-After or None), first first
    troubles: list[tuple[int, str | None]] = field(default_factory=list)
    failing: set[str] = field(default_factory=set)  # paths that answer 503 (a server error) every time
    port: int = 0
    clock: int = 1_700_000_000  # the Last-Modified of the next page put

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.origin + path

    def put(
        self, path: str, body: bytes | str, content_type: str = "text/html; charset=utf-8", with_length: bool = True
    ) -> None:
        self.clock += 60  # a later Last-Modified for every change
        data = body.encode() if isinstance(body, str) else body
        self.resources[path] = Resource(data, content_type, modified=self.clock, with_length=with_length)

    def redirect(self, path: str, location: str, status: int = 302) -> None:
        self.resources[path] = Resource(status=status, location=location)

    def remove(self, path: str) -> None:
        self.resources.pop(path, None)

    def paths(self) -> list[str]:
        return [hit.path for hit in self.hits]

    def clear(self) -> None:
        self.hits.clear()

    def answer(self, path: str, headers: dict[str, str]) -> tuple[Resource, int]:
        """The resource for a request and the status it gets (304 when the validators match)."""
        if self.troubles:
            status, retry_after = self.troubles.pop(0)
            return Resource(b"try later", "text/plain", status=status, retry_after=retry_after), status
        if path in self.failing:
            return Resource(b"server error", "text/plain", status=503), 503
        if self.token is not None and headers.get("authorization") != f"Bearer {self.token}":
            return Resource(b"login required", "text/plain", status=401), 401
        resource = self.resources.get(path)
        if resource is None:
            return Resource(b"not found", "text/plain", status=404), 404
        if resource.status != 200:
            return resource, resource.status
        if headers.get("if-none-match") == resource.etag:
            return resource, 304
        since = headers.get("if-modified-since")
        if since and "if-none-match" not in headers:
            if email.utils.parsedate_to_datetime(since).timestamp() >= resource.modified:
                return resource, 304
        return resource, 200


def _handler(site: DocsSite) -> type[BaseHTTPRequestHandler]:
    class Handler(QuietHandler):
        def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
            headers = {k.lower(): v for k, v in self.headers.items()}
            resource, status = site.answer(self.path, headers)
            body = resource.body if status in (200, 401, 404, 429, 503) else b""
            # logged before answering: the test reads the log as soon as its client has the answer
            site.hits.append(Hit(self.path, headers, status, len(body)))
            try:
                self.send_response(status)
                if resource.location:
                    self.send_header("Location", resource.location)
                if resource.retry_after:
                    self.send_header("Retry-After", resource.retry_after)
                if status in (200, 304) and resource.status == 200:
                    self.send_header("ETag", resource.etag)
                    self.send_header("Last-Modified", email.utils.formatdate(resource.modified, usegmt=True))
                if body:
                    self.send_header("Content-Type", resource.content_type)
                if resource.with_length or not body:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                for start in range(0, len(body), 64 * 1024):
                    self.wfile.write(body[start : start + 64 * 1024])
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client stopped reading (a page over its size cap)

    return Handler


@contextmanager
def docs_site(token: str | None = None) -> Iterator[DocsSite]:
    """A running DocsSite on a free loopback port (HTTP/1.0: one connection per request, so a body
    without Content-Length ends when the connection closes)."""
    site = DocsSite(token=token)
    with FakeServer(_handler(site), "docs-site") as server:
        site.port = server.port
        yield site


def page(title: str, body: str, links: Sequence[str] = (), nav: str = "Site navigation") -> str:
    """An HTML page the way docs sites build them: a nav bar, the article, a footer."""
    nav_links = "".join(f'<li><a href="{href}">{href}</a></li>' for href in links)
    return (
        f"<!doctype html><html><head><title>{title} - Example Docs</title></head><body>"
        f"<nav><p>{nav}</p><ul>{nav_links}</ul></nav>"
        f"<main><article><h1>{title}</h1>{body}</article></main>"
        "<footer><p>Copyright Example Corp footer text. All rights reserved.</p></footer></body></html>"
    )


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")

"""The website connector's pure parts: URLs (normalised, inside the allowed prefix, as mirror paths),
the links of a page, sitemaps, and the page's main content as Markdown. No I/O here."""

from __future__ import annotations

import gzip
import hashlib
import io
import posixpath
import re
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from datetime import UTC, datetime
from html.parser import HTMLParser
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

import trafilatura

DEFAULT_PORTS = {"http": 80, "https": 443}
# A sitemap may be 50 MB uncompressed by the protocol; more than that is not a sitemap.
MAX_SITEMAP_BYTES = 50 * 1024 * 1024
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_PAGE_SUFFIXES = (".html", ".htm", ".xhtml", ".php", ".asp", ".aspx", ".jsp")
_SEGMENT_MAX = 80  # characters of one mirror path segment
# Landmarks that are never a page's main content, removed before extraction: on a page of little text
# (a section's index) trafilatura's fallbacks otherwise take a long navigation list for the content.
_NOT_CONTENT = ["//nav", "//footer", "//aside", "//*[@role='navigation']", "//*[@role='contentinfo']"]


def normalize(url: str, base: str | None = None) -> str | None:
    """`url` (resolved against `base`) in one canonical form, so a page is visited once whatever the
    spelling of its links: http(s) only, no fragment, lower-case scheme and host, no default port, no
    dot segments, `/` for an empty path. None for anything else (mailto:, javascript:, a bad port)."""
    try:
        parts = urlsplit(urljoin(base, url.strip()) if base else url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"  # IPv6 literal
    netloc = host if port in (None, DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    # an encoded dot is a dot (RFC 3986 6.2.2.2): "/docs/%2e%2e/admin" is "/admin", outside "/docs/"
    path = _remove_dot_segments(re.sub("%2[eE]", ".", parts.path) or "/")
    return urlunsplit((scheme, netloc, path, parts.query, ""))


def _remove_dot_segments(path: str) -> str:
    if "/." not in path and not path.startswith("."):
        return path
    normal = posixpath.normpath(path)
    normal = "/" if normal in (".", "//") else normal
    return normal + "/" if path.endswith(("/", "/.", "/..")) and normal != "/" else normal


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@dataclass(frozen=True)
class Prefix:
    """The part of the web the crawler may request pages from: one origin and a path under it."""

    origin: str  # scheme://host[:port], normalised
    path: str  # starts with "/"; ends with "/" unless it names a single page

    @classmethod
    def of(cls, url: str) -> Prefix:
        """The prefix an admin wrote (normalised)."""
        parts = urlsplit(url)
        return cls(f"{parts.scheme}://{parts.netloc}", parts.path or "/")

    @classmethod
    def around(cls, url: str) -> Prefix:
        """The default prefix of a start URL: its folder (`/docs/guide/intro.html` -> `/docs/guide/`)."""
        parts = urlsplit(url)
        path = parts.path if parts.path.endswith("/") else parts.path.rsplit("/", 1)[0] + "/"
        return cls(f"{parts.scheme}://{parts.netloc}", path)

    def contains(self, url: str) -> bool:
        if origin(url) != self.origin:
            return False
        path = urlsplit(url).path
        if self.path.endswith("/"):
            return path.startswith(self.path)
        return path == self.path or path.startswith(self.path + "/")

    def __str__(self) -> str:
        return self.origin + self.path


def mirror_path(url: str) -> str:
    """The page's file in the mirror: its URL path made safe, ending .md (`/docs/a b.html` ->
    `docs/a-b.md`, `/docs/` -> `docs/index.md`; a query adds a short hash of itself)."""
    parts = urlsplit(url)
    segments = [_safe_segment(s) for s in unquote(parts.path).split("/")]
    segments = [s for s in segments if s]
    if parts.path.endswith("/") or not segments:
        segments.append("index")
    last = segments[-1]
    for suffix in _PAGE_SUFFIXES:
        if last.lower().endswith(suffix) and len(last) > len(suffix):
            last = last[: -len(suffix)]
            break
    if parts.query:
        last += "-q" + hashlib.sha256(parts.query.encode()).hexdigest()[:8]
    segments[-1] = last
    return "/".join(segments) + ".md"


def _safe_segment(segment: str) -> str:
    safe = _UNSAFE.sub("-", segment).strip("-")[:_SEGMENT_MAX]
    return "" if set(safe) <= {"."} else safe  # "", ".", ".." name no folder


def unique_path(url: str, taken: set[str]) -> str:
    """`mirror_path(url)`, or that with a hash of the URL when another page already has it
    (`/a/` and `/a/index.html` are two pages with one natural path)."""
    path = mirror_path(url)
    if path in taken:
        path = path[: -len(".md")] + "-" + hashlib.sha256(url.encode()).hexdigest()[:10] + ".md"
    return path


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.base: str | None = None
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ("a", "area", "base"):
            return
        href = dict(attrs).get("href")
        if not href:
            return
        if tag == "base":
            self.base = self.base or href
        else:
            self.hrefs.append(href)


def page_links(html: str, page_url: str) -> list[str]:
    """The page's links, absolute and normalised, in page order, each once (`<base href>` honoured)."""
    parser = _Links()
    parser.feed(html)
    parser.close()
    base = normalize(parser.base, page_url) if parser.base else page_url
    links: dict[str, None] = {}
    for href in parser.hrefs:
        link = normalize(href, base or page_url)
        if link:
            links[link] = None
    return list(links)


@dataclass(frozen=True)
class SitemapEntry:
    loc: str
    lastmod: str | None


def parse_sitemap(body: bytes) -> tuple[list[SitemapEntry], list[SitemapEntry]]:
    """(pages, sitemaps) a sitemap lists: a `<urlset>` lists pages, a `<sitemapindex>` other sitemaps.
    Raises ValueError when the body is not one. Gzipped sitemaps are opened (bounded)."""
    if body[:2] == b"\x1f\x8b":
        with gzip.GzipFile(fileobj=io.BytesIO(body)) as unzipped:
            body = unzipped.read(MAX_SITEMAP_BYTES + 1)
        if len(body) > MAX_SITEMAP_BYTES:
            raise ValueError("larger than 50 MB uncompressed")
    if b"<!ENTITY" in body:  # entity expansion is how XML bombs work; a sitemap never needs one
        raise ValueError("declares XML entities")
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError as exc:
        raise ValueError(f"not XML ({exc})") from None
    kind = _local(root.tag)
    if kind not in ("urlset", "sitemapindex"):
        raise ValueError(f"not a sitemap (root element <{kind}>)")
    entries = []
    for item in root:
        fields = {_local(child.tag): (child.text or "").strip() for child in item}
        if fields.get("loc"):
            entries.append(SitemapEntry(fields["loc"], fields.get("lastmod") or None))
    return (entries, []) if kind == "urlset" else ([], entries)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse_lastmod(value: str | None) -> datetime | None:
    """A sitemap `lastmod` (W3C datetime: a date, or a date-time with its zone) as an aware datetime."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Extracted:
    title: str
    markdown: str


def extract(html: bytes, url: str) -> Extracted | None:
    """The page's main content as Markdown, headings kept (chunks get heading paths from them),
    navigation, footers and comments left out; None when the page has no main content."""
    markdown = trafilatura.extract(
        html,
        url=url,
        output_format="markdown",
        include_formatting=True,
        include_links=False,
        include_images=False,
        include_comments=False,
        include_tables=True,
        prune_xpath=_NOT_CONTENT,
    )
    if not markdown or not markdown.strip():
        return None
    metadata = trafilatura.extract_metadata(html, default_url=url)
    title = (metadata.title if metadata else None) or _first_heading(markdown) or url
    return Extracted(title=" ".join(title.split())[:300], markdown=markdown.strip() + "\n")


def _first_heading(markdown: str) -> str | None:
    for line in markdown.splitlines():
        if line.startswith("#"):
            return line.lstrip("#").strip() or None
    return None

"""The `website` source: a docs site, listed by its sitemap.xml and/or crawled by links from a start
page, never outside the allowed prefix (one origin and a path under it), robots.txt honoured.

Re-syncs cost little: a page whose sitemap `lastmod` is not newer than the mirrored one is not
requested at all, and every other page is asked for conditionally (If-None-Match / If-Modified-Since
from the ETag / Last-Modified kept in the document's `version`), a 304 downloading no body. The links
of every page crawled are kept in the cursor, so a crawl walks on through pages that answered 304,
and a replica that never synced crawls as cheaply as the one that did. Each page's main content
(trafilatura: navigation, footers and comments left out, headings kept) is mirrored as Markdown.
"""

from __future__ import annotations

import email.utils
import fnmatch
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit
from urllib.robotparser import RobotFileParser

from retrieval.errors import SourceAuthError, SourceConfigError, SourceNotFoundError, SourceUnreachableError
from retrieval.sources.base import Changes, Cursor, KnownDocument, SourceDocument
from retrieval.sources.spec import SourceSpec
from retrieval.sources.website_cursor import Page, dump_cursor, load_cursor, validators, version_fields, version_of
from retrieval.sources.website_http import Fetched, Fetcher
from retrieval.sources.website_pages import (
    MAX_SITEMAP_BYTES,
    Prefix,
    extract,
    normalize,
    origin,
    page_links,
    parse_lastmod,
    parse_sitemap,
    unique_path,
)

KEYS = (
    "start_url",
    "sitemap_url",
    "allowed_prefix",
    "include",
    "exclude",
    "max_pages",
    "max_page_bytes",
    "max_depth",
    "requests_per_second",
    "user_agent",
    "token_env",
)
HTML_TYPES = ("text/html", "application/xhtml+xml")
USER_AGENT = "qwenbot-docs-sync/0.1"
MAX_SITEMAPS = 100  # sitemaps one sync reads (an index and the sitemaps it lists)
MAX_ROBOTS_BYTES = 512 * 1024  # RFC 9309: crawlers parse at least 500 KiB
MAX_CRAWL_DELAY = 30.0
MAX_NOTES = 50
QUEUE_FACTOR = 4  # pages queued at most, as a multiple of max_pages
# 401/403s before any page answered that make the token, not the pages, the cause (a sitemap's site)
AUTH_PROBES = 5


@dataclass(frozen=True)
class WebsiteSettings:
    start_url: str | None
    sitemap_url: str | None
    prefix: Prefix
    include: tuple[str, ...]
    exclude: tuple[str, ...]
    max_pages: int
    max_page_bytes: int
    max_depth: int
    requests_per_second: float
    user_agent: str
    token: str | None = field(default=None, repr=False)  # the secret: never shown
    token_variable: str | None = None  # the name of the variable holding it: what messages name


def read_settings(spec: SourceSpec) -> WebsiteSettings:
    unknown = sorted(set(spec.settings) - set(KEYS))
    if unknown:
        raise spec.error(f"unknown setting {unknown[0]!r}: the website settings are {', '.join(KEYS)}")
    start, sitemap = _url(spec, "start_url"), _url(spec, "sitemap_url")
    if not start and not sitemap:
        raise spec.error("set 'start_url' (a page to crawl from) or 'sitemap_url' (the site's sitemap.xml), or both")
    written = _url(spec, "allowed_prefix")
    prefix = Prefix.of(written) if written else Prefix.around(start or sitemap or "")
    for key, url in (("start_url", start), ("sitemap_url", sitemap)):
        if url and origin(url) != prefix.origin:
            raise spec.error(f"'{key}' must be on {prefix.origin}, the site of the allowed prefix")
    if start and not prefix.contains(start):
        raise spec.error(f"'start_url' must be inside 'allowed_prefix' ({prefix})")
    settings = WebsiteSettings(
        start_url=start,
        sitemap_url=sitemap,
        prefix=prefix,
        include=spec.strings("include"),
        exclude=spec.strings("exclude"),
        max_pages=spec.get("max_pages", int, 1000),
        max_page_bytes=spec.get("max_page_bytes", int, 2 * 1024 * 1024),
        max_depth=spec.get("max_depth", int, 5),
        requests_per_second=spec.get("requests_per_second", float, 2.0),
        user_agent=spec.get("user_agent", str, USER_AGENT).strip() or USER_AGENT,
        token=spec.secret("token_env", required=False),
        token_variable=spec.get("token_env", str, "").strip() or None,
    )
    for key in ("max_pages", "max_page_bytes", "requests_per_second"):
        if getattr(settings, key) <= 0:
            raise spec.error(f"'{key}' must be more than 0")
    if settings.max_depth < 0:
        raise spec.error("'max_depth' must be 0 or more")
    return settings


def _url(spec: SourceSpec, key: str) -> str | None:
    written = spec.get(key, str, "").strip()
    if not written:
        return None
    url = normalize(written)
    if url is None:
        raise spec.error(f"'{key}' must be an http:// or https:// URL")
    if urlsplit(written).username or urlsplit(written).password:
        raise spec.error(f"'{key}' must not hold credentials: name the variable holding a token in 'token_env'")
    return url


def connector(spec: SourceSpec, work_dir: Path) -> WebsiteConnector:
    """The site's connector; `work_dir` is unused: all it keeps between syncs is in the cursor."""
    return WebsiteConnector(spec, read_settings(spec))


class WebsiteConnector:
    def __init__(self, spec: SourceSpec, settings: WebsiteSettings) -> None:
        self.spec = spec
        self.settings = settings
        self.sleep: Callable[[float], None] = time.sleep  # waits for pacing, Retry-After and retries

    def changes(self, cursor: Cursor, known: Mapping[str, KnownDocument]) -> Changes:
        label = f"source {self.spec.name!r} ({self.spec.kind}): "
        s = self.settings
        fetcher = Fetcher(label, s.prefix.origin, s.user_agent, s.token, s.requests_per_second, self.sleep)
        try:
            return _Crawl(self.spec, s, fetcher, cursor, known).run()
        finally:
            fetcher.close()


class _Crawl:
    """One sync: robots.txt, the sitemaps, then the pages breadth first from the start page and the
    sitemap's entries."""

    def __init__(
        self,
        spec: SourceSpec,
        settings: WebsiteSettings,
        fetcher: Fetcher,
        cursor: Cursor,
        known: Mapping[str, KnownDocument],
    ) -> None:
        self.s = settings
        self.fetcher = fetcher
        self.label = fetcher.label
        self.known = known
        self.crawling = settings.start_url is not None  # follow links (else the sitemap is the listing)
        self.old = load_cursor(cursor, str(settings.prefix))
        self.pages: dict[str, Page] = {}  # the next cursor
        self.changes = Changes()
        self.taken = {doc.path for doc in known.values()}
        self.robots = RobotFileParser()
        self.answered = False  # a page answered 200 or 304: a 401/403 is then that page's, not the token's
        self.refused: list[tuple[str, int]] = []  # pages that answered 401/403
        self.complete = True  # False when a failure may have hidden pages: nothing is deleted for not being listed
        self.disallowed: set[str] = set()

    def run(self) -> Changes:
        self._read_robots()
        lastmods = self._read_sitemaps() if self.s.sitemap_url else {}
        queue: deque[tuple[str, int]] = deque()
        if self.s.start_url:
            if not self.robots.can_fetch(self.s.user_agent, self.s.start_url):
                raise self._config_error(f"robots.txt disallows start_url {self.s.start_url}: pick a page it allows")
            queue.append((self.s.start_url, 0))
        queue.extend((url, 0) for url in lastmods if url != self.s.start_url)
        seen, visited = set(queue_url for queue_url, _ in queue), 0
        while queue:
            url, depth = queue.popleft()
            if visited == self.s.max_pages:
                self._note(f"stopped at max_pages ({self.s.max_pages}): more pages were not synced")
                break
            visited += 1
            links = self._visit(url, lastmods.get(url), is_start=url == self.s.start_url)
            if depth < self.s.max_depth:
                for link in links:
                    # the queue is bounded too: max_pages stops the crawl long before this many
                    if len(seen) < QUEUE_FACTOR * self.s.max_pages and link not in seen and self._may_request(link):
                        seen.add(link)
                        queue.append((link, depth + 1))
        if self.refused and not self.answered:  # every page it asked for was refused: the token's fault
            raise self._auth_error(self.refused[0][1], self.refused[0][0])
        if self.disallowed:
            self._note(f"{len(self.disallowed)} pages disallowed by robots.txt were not requested")
        self.changes.listed_all = self.complete
        if not self.complete:  # pages a failure hid stay known as they were, links and all
            self.pages = {**self.old, **self.pages}
        self.changes.requests = self.fetcher.requests
        self.changes.cursor = dump_cursor(self.pages, str(self.s.prefix)) if self.pages else None
        return self.changes

    def _read_robots(self) -> None:
        url = self.s.prefix.origin + "/robots.txt"
        fetched = self.fetcher.get(url, self._same_site, lambda _: {}, MAX_ROBOTS_BYTES)
        if fetched.status == 200 and fetched.body is not None:
            self.robots.parse(fetched.body.decode("utf-8", errors="replace").splitlines())
        elif 400 <= fetched.status < 500 or fetched.refused:
            self.robots.parse([])  # RFC 9309: an unavailable robots.txt sets no rules
        else:
            why = fetched.problem or ("over 512 KiB" if fetched.too_large else f"status {fetched.status}")
            raise SourceUnreachableError(
                f"{self.label}{url} cannot be read ({why}): the site is not crawled until it can; retry later"
            )
        delay = self.robots.crawl_delay(self.s.user_agent)
        if delay:
            self.fetcher.slow_down(min(float(delay), MAX_CRAWL_DELAY))

    def _read_sitemaps(self) -> dict[str, str | None]:
        """The pages the sitemap (and the sitemaps an index lists) give inside the prefix, with lastmod."""
        assert self.s.sitemap_url is not None
        pending, read, outside = [self.s.sitemap_url], set[str](), 0
        entries: dict[str, str | None] = {}
        while pending and len(read) < MAX_SITEMAPS:
            url = pending.pop(0)
            if url in read:
                continue  # an index listing itself, or a sitemap twice
            read.add(url)
            fetched = self.fetcher.get(url, self._same_site, lambda _: {}, MAX_SITEMAP_BYTES)
            try:
                if fetched.status != 200 or fetched.body is None:
                    raise ValueError(self._why(fetched))
                pages, sitemaps = parse_sitemap(fetched.body)
            except ValueError as exc:
                if url == self.s.sitemap_url:
                    raise self._listing_error("sitemap_url", url, fetched, str(exc)) from None
                self._failed(f"{url}: sitemap not read ({exc})")
                continue
            for entry in pages:
                page = normalize(entry.loc)
                if page and self.s.prefix.contains(page):
                    entries.setdefault(page, entry.lastmod)
                else:
                    outside += 1
            for entry in sitemaps:
                child = normalize(entry.loc)
                if child and self._same_site(child):
                    pending.append(child)
                else:
                    self._note(f"{entry.loc}: sitemap on another site not read")
        if pending:
            self._failed(f"stopped at {MAX_SITEMAPS} sitemaps: {len(pending)} more not read")
        if outside:
            self._note(f"{outside} sitemap entries outside {self.s.prefix} were left out")
        return {url: lastmod for url, lastmod in entries.items() if self._may_request(url)}

    def _visit(self, url: str, lastmod: str | None, is_start: bool) -> list[str]:
        """Syncs one page; returns its links inside the prefix (to crawl on)."""
        if url in self.pages:
            return []  # reached earlier through a redirect
        old = self._old_page(url)
        if old and lastmod and (not self.crawling or old.links is not None) and not self._newer(url, old, lastmod):
            return self._keep(url, old)  # the sitemap says it has not changed: no request
        fetched = self.fetcher.get(
            url, self._may_request, self._conditions, self.s.max_page_bytes, HTML_TYPES, self.pages.__contains__
        )
        if fetched.url != url:
            if fetched.url in self.pages:
                return []  # a redirect to a page this sync already has
            url, old = fetched.url, self._old_page(fetched.url)
        if fetched.status == 304 and old:
            self.answered = True
            if lastmod:  # the page is as it was: remember the newer lastmod, so the next sync asks no more
                fields = version_fields(old.version)
                old = replace(old, version=version_of(fields.get("etag"), fields.get("modified"), lastmod))
            return self._keep(url, old)
        if fetched.status == 200:
            self.answered = True
            return self._read_page(url, fetched, lastmod)
        self._not_read(url, fetched, is_start)
        return []

    def _newer(self, url: str, old: Page, lastmod: str) -> bool:
        """Whether the sitemap's `lastmod` is newer than the page this source has (or cannot tell). The
        cursor may know a later lastmod than the document's version: one that came with a 304."""
        since = parse_lastmod(lastmod)
        cached = self.old.get(url)
        versions = [old.version] + ([cached.version] if cached else [])
        seen = [t for t in (parse_lastmod(version_fields(v).get("lastmod")) for v in versions) if t]
        return since is None or not seen or since > max(seen)

    def _read_page(self, url: str, fetched: Fetched, lastmod: str | None) -> list[str]:
        version = version_of(fetched.etag, fetched.last_modified, lastmod)
        if fetched.too_large:
            return self._skip(url, Page(version, (), f"larger than max_page_bytes ({self.s.max_page_bytes} bytes)"))
        if fetched.body is None:
            return self._skip(url, Page(version, (), f"not an HTML page ({fetched.content_type or 'no type'})"))
        # only the links are read from this text (trafilatura finds the page's encoding itself)
        html = fetched.body.decode("utf-8", errors="replace")
        links = [link for link in page_links(html, url) if self.s.prefix.contains(link)] if self.crawling else []
        self.pages[url] = Page(version, tuple(links) if self.crawling else None)
        if not self._wanted(url):
            return links
        page = extract(fetched.body, url)
        if page is None:
            return self._skip(url, Page(version, self.pages[url].links, "no main content (not a document page)"))
        path = self.known[url].path if url in self.known else unique_path(url, self.taken)
        self.taken.add(path)
        updated = _iso(lastmod) or _http_date_iso(fetched.last_modified)
        self.changes.upserts.append(
            SourceDocument(
                doc_id=url,
                path=path,
                title=page.title,
                content=page.markdown.encode(),
                url=url,
                updated=updated,
                version=version,
            )
        )
        return links

    def _not_read(self, url: str, fetched: Fetched, is_start: bool) -> None:
        """A page that answered neither 200 nor 304: a note, a deletion, or the sync's error."""
        status = fetched.status
        if fetched.refused:
            if is_start:
                raise self._config_error(f"start_url redirects to {fetched.refused}, outside {self.s.prefix}")
            self._note(f"{url}: redirect to {fetched.refused} refused (outside {self.s.prefix})")
        elif status in (401, 403):
            self.refused.append((url, status))
            if is_start or (not self.answered and len(self.refused) == AUTH_PROBES):
                raise self._auth_error(status, url)
            self._note(f"{url}: skipped, answered {status} (not readable with these credentials)")
        elif status in (404, 410):
            if is_start:
                raise SourceNotFoundError(f"{self.label}start_url {url} answered {status}: fix start_url")
            if url in self.known:
                self.changes.deleted.append(url)
        elif status == 0 or status >= 500:
            if is_start:
                raise SourceUnreachableError(f"{self.label}start_url {url}: {self._why(fetched)}; retry later")
            self._failed(f"{url}: not synced ({self._why(fetched)}); the mirrored copy is kept")
            if url in self.known:
                self.changes.unchanged.append(url)
            if url in self.old:
                self.pages[url] = self.old[url]
        else:
            self._note(f"{url}: skipped, answered {status}")

    def _keep(self, url: str, old: Page) -> list[str]:
        if old.skipped:
            return self._skip(url, old)
        self.pages[url] = old
        if url in self.known:
            self.changes.unchanged.append(url)
        return list(old.links or ())

    def _skip(self, url: str, page: Page) -> list[str]:
        self.pages[url] = page
        self._note(f"{url}: skipped, {page.skipped}")
        return list(page.links or ())

    def _old_page(self, url: str) -> Page | None:
        """What the last sync knew of `url`; its links are None when they must be read again."""
        cached = self.old.get(url)
        links = cached.links if cached and self.crawling else None
        if url in self.known:
            return Page(self.known[url].version, links)
        if cached and (links is not None or not self.crawling):
            return Page(cached.version, links, cached.skipped)
        return None

    def _conditions(self, url: str) -> dict[str, str]:
        """The conditional headers for `url`: only when a 304 leaves this sync all it needs."""
        old = self._old_page(url)
        if old is None or (self.crawling and old.links is None):
            return {}
        return validators(old.version)

    def _same_site(self, url: str) -> bool:
        return origin(url) == self.s.prefix.origin

    def _may_request(self, url: str) -> bool:
        if not self.s.prefix.contains(url) or (not self._wanted(url) and url != self.s.start_url):
            return False
        if not self.robots.can_fetch(self.s.user_agent, url):
            self.disallowed.add(url)
            return False
        return True

    def _wanted(self, url: str) -> bool:
        """The include / exclude globs, matched against the URL's path (with its query)."""
        parts = urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        if self.s.include and not any(fnmatch.fnmatchcase(target, glob) for glob in self.s.include):
            return False
        return not any(fnmatch.fnmatchcase(target, glob) for glob in self.s.exclude)

    def _note(self, line: str) -> None:
        if len(self.changes.notes) < MAX_NOTES:
            self.changes.notes.append(line)
        elif len(self.changes.notes) == MAX_NOTES:
            self.changes.notes.append("(more pages skipped: notes stop here)")

    def _failed(self, line: str) -> None:
        self.complete = False
        self._note(line)

    def _why(self, fetched: Fetched) -> str:
        if fetched.refused:
            return f"redirects to {fetched.refused}, outside {self.s.prefix}"
        if fetched.too_large:
            return "too large"
        return fetched.problem or f"answered {fetched.status}"

    def _config_error(self, message: str) -> SourceConfigError:
        return SourceConfigError(self.label + message)

    def _auth_error(self, status: int, url: str) -> SourceAuthError:
        fix = (
            f"check that the token in {self.s.token_variable} (token_env) is valid and may read these pages"
            if self.s.token
            else "set token_env to the name of a variable holding a token the site accepts (sent as Bearer)"
        )
        return SourceAuthError(f"{self.label}{url} answered {status}: {fix}")

    def _listing_error(self, key: str, url: str, fetched: Fetched, why: str) -> Exception:
        if fetched.status in (401, 403):
            return self._auth_error(fetched.status, url)
        if fetched.status in (404, 410):
            return SourceNotFoundError(f"{self.label}{key} {url} answered {fetched.status}: fix {key}")
        if fetched.status == 200:
            return self._config_error(f"{key} {url} is not a sitemap ({why})")
        return SourceUnreachableError(f"{self.label}{key} {url}: {why}; retry later")


def _iso(lastmod: str | None) -> str | None:
    parsed = parse_lastmod(lastmod)
    return parsed.isoformat() if parsed else None


def _http_date_iso(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).isoformat()
    except (TypeError, ValueError):
        return None

"""What the wiki connectors (Confluence, Notion) share: a page's place in its tree as the Markdown's
leading heading, readable mirror paths, and the retry budget for 429s and server errors.

A page's ancestors become one leading heading ("Engineering / Runbooks") with the page's own headings
one level below it, so every chunk's heading path shows where the page sits in the tree. The page's
own title stays the document's title (front matter): citations read "Deploy", not the whole path.
"""

from __future__ import annotations

import re
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from retrieval.errors import SourceRateLimitedError, SourceUnreachableError

SLUG_LIMIT = 60  # characters of a title kept in a mirror file's name
_HEADING = re.compile(r"^(#{1,6})(?=\s)", re.MULTILINE)
_FENCE = re.compile(r"^(```|~~~)", re.MULTILINE)


def slug(title: str) -> str:
    """A file-name-safe, readable form of a title ("Déploiement: v2" -> "deploiement-v2")."""
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    text = re.sub(r"[^a-z0-9]+", "-", ascii_title.lower()).strip("-")
    return text[:SLUG_LIMIT].rstrip("-") or "page"


def page_markdown(ancestors: Sequence[str], body: str) -> str:
    """The page's Markdown under one heading naming its ancestors (none: the body as it is), with the
    body's headings moved one level down (capped at ######) so they nest under it."""
    names = [" ".join(a.split()) for a in ancestors if a.strip()]
    if not names:
        return body.strip() + "\n"
    return f"# {' / '.join(names)}\n\n{_demote_headings(body).strip()}\n"


def _demote_headings(markdown: str) -> str:
    # Headings inside fenced code are code, not headings: only lines outside fences are demoted.
    parts, inside = [], False
    for line in markdown.splitlines(keepends=True):
        if _FENCE.match(line):
            inside = not inside
        elif not inside:
            line = _HEADING.sub(lambda m: "#" * min(6, len(m.group(1)) + 1), line)
        parts.append(line)
    return "".join(parts)


@dataclass
class RetryBudget:
    """Counts a sync's requests and decides, per failed request, whether to wait and retry.

    With `interval`, requests are spaced at least that many seconds apart (a source's documented rate),
    so 429s stay the exception. 429s are waited out as the source asks (Retry-After) while the sync's
    total wait stays within `wait_budget` seconds; beyond that the sync stops with SourceRateLimitedError,
    so the bot backs off instead of hanging. Server errors and timeouts are retried `server_tries` times
    with a short backoff.
    """

    prefix: str  # "source 'x' (confluence): ", the start of every message
    interval: float = 0.0
    wait_budget: float = 60.0
    server_tries: int = 3
    default_wait: float = 2.0  # a 429 without Retry-After
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    requests: int = 0
    waited: float = 0.0
    _last: float | None = field(default=None, repr=False)

    def request(self) -> None:
        """Called before each request: counts it, and keeps the pace."""
        self.requests += 1
        if self.interval > 0:
            if self._last is not None:
                wait = self._last + self.interval - time.monotonic()
                if wait > 0:
                    self.sleep(wait)
            self._last = time.monotonic()

    def rate_limited(self, retry_after: float | None) -> None:
        """Waits as asked, or raises when that would exceed the sync's wait budget."""
        wait = self.default_wait if retry_after is None else retry_after
        if self.waited + wait > self.wait_budget:
            raise SourceRateLimitedError(
                f"{self.prefix}rate limited (429) beyond the {self.wait_budget:g} s this sync waits; "
                "the next sync continues where this one stopped",
                retry_after=retry_after,
            )
        self.waited += wait
        self.sleep(wait)

    def server_error(self, attempt: int, what: str) -> None:
        """Waits before the next try (attempt counts from 0), or raises once the tries are spent."""
        if attempt + 1 >= self.server_tries:
            raise SourceUnreachableError(f"{self.prefix}{what} (after {self.server_tries} tries): retried next sync")
        self.sleep(0.5 * 2**attempt)

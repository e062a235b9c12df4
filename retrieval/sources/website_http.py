"""The website connector's HTTP: one GET at a time at the configured rate, redirects checked hop by hop
(never followed off the allowed area), bodies read bounded, 429 and 5xx retried within a budget.

follow_redirects stays off in httpx: each Location is checked before it is requested, so a redirect
off the allowed prefix is refused without a request, and the token never leaves the site's origin.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import httpx

from retrieval.errors import SourceRateLimitedError, SourceUnreachableError
from retrieval.retry_after import retry_after_seconds
from retrieval.sources.website_pages import normalize, origin

TIMEOUT = httpx.Timeout(30.0, connect=10.0)
REDIRECTS = 5  # hops followed per page, each one checked
RETRIES = 2  # more tries after a 5xx or a dropped connection
RATE_LIMIT_BUDGET = 60.0  # seconds of Retry-After one sync waits out before it gives up
_REDIRECT_STATUSES = (301, 302, 303, 307, 308)


@dataclass(frozen=True)
class Fetched:
    url: str  # where the answer came from: the URL asked for, or the last redirect inside the area
    status: int  # 0: no answer (refused redirect, too many redirects, timed out)
    content_type: str = ""
    etag: str | None = None
    last_modified: str | None = None
    body: bytes | None = None  # read only for a 200 of an accepted type within the size cap
    too_large: bool = False
    refused: str | None = None  # a redirect's target outside the allowed area (never requested)
    problem: str = ""  # why there was no answer, when status is 0


class Fetcher:
    """GETs for one source: counts them, paces them, and adds the token only on the site's origin."""

    def __init__(
        self,
        label: str,
        site: str,
        user_agent: str,
        token: str | None,
        requests_per_second: float,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.label = label  # "source 'name' (website): ", the start of every error message
        self.site = site  # the one origin requests go to
        self.requests = 0
        self.interval = 1.0 / requests_per_second
        self._token = token
        self._sleep = sleep
        self._next = 0.0
        self._waited = 0.0
        self._client = httpx.Client(timeout=TIMEOUT, follow_redirects=False, headers={"User-Agent": user_agent})

    def close(self) -> None:
        self._client.close()

    def slow_down(self, seconds: float) -> None:
        """At least `seconds` between requests (robots.txt's Crawl-delay)."""
        self.interval = max(self.interval, seconds)

    def get(
        self,
        url: str,
        allowed: Callable[[str], bool],
        validators: Callable[[str], dict[str, str]],
        max_bytes: int,
        accept: tuple[str, ...] = (),
        done: Callable[[str], bool] = lambda _: False,
    ) -> Fetched:
        """GET `url`, following redirects while each target is `allowed` and not `done` (a redirect to a
        page already synced answers status 0 with that page's URL, without requesting it again).
        `validators(url)` gives the conditional headers for the URL a hop asks for; `accept`: the
        content types whose body is read."""
        for _ in range(REDIRECTS + 1):
            answer, location = self._request(url, validators(url), max_bytes, accept)
            if location is None:
                return answer
            target = normalize(location, url)
            if target is None or not allowed(target):
                return Fetched(url=url, status=0, refused=target or location)
            if done(target):
                return Fetched(url=target, status=0, problem="already synced")
            url = target
        return Fetched(url=url, status=0, problem=f"more than {REDIRECTS} redirects")

    def _request(
        self, url: str, headers: dict[str, str], max_bytes: int, accept: tuple[str, ...]
    ) -> tuple[Fetched, str | None]:
        if self._token and origin(url) == self.site:
            headers = {**headers, "Authorization": f"Bearer {self._token}"}
        for attempt in range(RETRIES + 1):
            self._pace()
            self.requests += 1
            try:
                with self._client.stream("GET", url, headers=headers) as response:
                    if response.status_code == 429:
                        self._wait_out(response)
                        continue
                    if response.status_code >= 500 and attempt < RETRIES:
                        self._sleep(2.0**attempt)
                        continue
                    location = response.headers.get("location")
                    if response.status_code in _REDIRECT_STATUSES and location:
                        return Fetched(url=url, status=response.status_code), location
                    return _read(url, response, max_bytes, accept), None
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                if attempt == RETRIES:
                    raise SourceUnreachableError(
                        f"{self.label}cannot reach {self.site} ({_describe(exc)}): check the URL and that "
                        "this machine can reach the site"
                    ) from None
            except httpx.TransportError as exc:
                if attempt == RETRIES:
                    return Fetched(url=url, status=0, problem=_describe(exc)), None
            self._sleep(2.0**attempt)
        return Fetched(url=url, status=0, problem="no answer after retries"), None

    def _pace(self) -> None:
        now = time.monotonic()
        if now < self._next:
            self._sleep(self._next - now)
        self._next = max(now, self._next) + self.interval

    def _wait_out(self, response: httpx.Response) -> None:
        """Waits as long as a 429's Retry-After asks while the sync's budget lasts; then gives up."""
        retry_after = retry_after_seconds(response.headers.get("retry-after"))
        wait = 1.0 if retry_after is None else retry_after
        if self._waited + wait > RATE_LIMIT_BUDGET:
            raise SourceRateLimitedError(
                f"{self.label}{self.site} keeps answering 429 (too many requests): lower requests_per_second; "
                "the next sync retries later",
                retry_after=retry_after,
            )
        self._waited += wait
        self._sleep(wait)


def _read(url: str, response: httpx.Response, max_bytes: int, accept: tuple[str, ...]) -> Fetched:
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    fetched = Fetched(
        url=url,
        status=response.status_code,
        content_type=content_type,
        etag=response.headers.get("etag"),
        last_modified=response.headers.get("last-modified"),
    )
    if response.status_code != 200 or (accept and content_type not in accept):
        return fetched  # the body is never downloaded
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        return replace(fetched, too_large=True)
    chunks, size = [], 0
    for chunk in response.iter_bytes():  # decoded bytes: a compressed bomb stops at the cap too
        size += len(chunk)
        if size > max_bytes:
            return replace(fetched, too_large=True)
        chunks.append(chunk)
    return replace(fetched, body=b"".join(chunks))


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__

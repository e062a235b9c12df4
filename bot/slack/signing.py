"""The signature check on Slack's HTTP requests, in place of Bolt's: Bolt logs each refused request
at INFO with its body (who asked what), and nothing tells the admin that a wrong SLACK_SIGNING_SECRET
is why every request is refused. This one logs no body, and one WARNING a minute that says so."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from slack_bolt.middleware import Middleware
from slack_bolt.request import BoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.signature import SignatureVerifier

log = logging.getLogger(__name__)

WARN_EVERY_SECONDS = 60.0
MAX_SKEW_SECONDS = 300  # Slack's (and slack_sdk's) replay window for the request timestamp


class SignedRequests(Middleware):
    """Bolt middleware: HTTP requests pass only with a valid Slack signature (Socket Mode has none).
    Refused ones get 401 and are counted; a WARNING names SLACK_SIGNING_SECRET at most once a minute."""

    def __init__(self, signing_secret: str, clock: Callable[[], float] = time.monotonic) -> None:
        self._verifier = SignatureVerifier(signing_secret)
        self._clock = clock
        self._lock = threading.Lock()
        self._refused = 0  # since the last warning
        self._quiet_until = float("-inf")

    def process(self, *, req: BoltRequest, resp: BoltResponse, next: Callable[[], BoltResponse]) -> BoltResponse | None:
        if req.mode == "socket_mode":
            return next()
        timestamp = (req.headers.get("x-slack-request-timestamp") or ["0"])[0]
        signature = (req.headers.get("x-slack-signature") or [""])[0]
        if self._verifier.is_valid(req.raw_body, timestamp, signature):
            return next()
        self._count(stale=not timestamp.isdigit() or abs(time.time() - int(timestamp)) > MAX_SKEW_SECONDS)
        return BoltResponse(status=401, body={"error": "invalid request"})

    def _count(self, *, stale: bool) -> None:
        with self._lock:
            self._refused += 1
            now = self._clock()
            if now < self._quiet_until:
                return
            since = "the start" if self._quiet_until == float("-inf") else "the last warning like this one"
            refused, self._refused = self._refused, 0
            self._quiet_until = now + WARN_EVERY_SECONDS
        why = (
            "its timestamp is more than 5 minutes off this machine's clock (check the clock; or it is a replay)"
            if stale
            else "its signature does not match: check SLACK_SIGNING_SECRET (the app's Basic Information > "
            "App Credentials > Signing Secret); or it did not come from Slack"
        )
        plural = "" if refused == 1 else "s"
        log.warning("refused %d Slack request%s (HTTP 401) since %s; the last one: %s", refused, plural, since, why)

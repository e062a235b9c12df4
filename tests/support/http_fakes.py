"""What the fake HTTP services in tests/support share: a server thread for the lifetime of a `with`
block, and the request handler's wire settings and JSON helpers."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any, Generic, Self, TypeVar

from support.servers import POLL_INTERVAL, FakeHTTPServer


class FakeServer:
    """A FakeHTTPServer on a free loopback port, served from a daemon thread while entered as a
    context manager. Fakes subclass it; their handler (a FakeHandler) reaches the fake as `self.fake`."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], name: str) -> None:
        self._httpd = FakeHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.fake = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": POLL_INTERVAL}, name=name, daemon=True
        )

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


class QuietHandler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the stdlib's name)
        pass  # keep test output quiet


Fake = TypeVar("Fake", bound=FakeServer)


class FakeHandler(QuietHandler, Generic[Fake]):
    """An API fake's handler: HTTP/1.1 keep-alive, as the real services do; `fake` is the FakeServer."""

    protocol_version = "HTTP/1.1"
    # one write per response (headers and body buffered): otherwise Nagle and delayed ACKs cost ~40 ms each
    wbufsize = -1
    disable_nagle_algorithm = True

    @property
    def fake(self) -> Fake:
        return self.server.fake  # type: ignore[attr-defined]

    def read_body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def send_bytes(self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def send_json(
        self, status: int, payload: Any, headers: dict[str, str] | None = None, content_type: str = "application/json"
    ) -> None:
        self.send_bytes(status, json.dumps(payload).encode(), content_type, headers)


class ScriptedRefusals:
    """A token-checking fake's scripted refusals: `expire()` revokes its token; `throttle()` and `fail()`
    make the next requests answer 429 with Retry-After, or a status, instead of being served."""

    token: str
    throttle_left: int = 0
    retry_after: str = "1"
    fail_left: int = 0
    fail_status: int = 503

    def expire(self) -> None:
        self.token = "revoked-" + self.token

    def throttle(self, times: int, retry_after: str = "1") -> None:
        self.throttle_left, self.retry_after = times, retry_after

    def fail(self, times: int, status: int) -> None:
        """The next `times` requests answer `status` (403: no permission; 5xx)."""
        self.fail_left, self.fail_status = times, status

    def refusal(self) -> int | None:
        """The status the next request answers instead of being served (429 first), counted down; None: serve it."""
        if self.throttle_left > 0:
            self.throttle_left -= 1
            return 429
        if self.fail_left > 0:
            self.fail_left -= 1
            return self.fail_status
        return None

"""The HTTP transport: POST /slack/events to the Bolt app, GET /healthz for load balancers, GET /metrics
for Prometheus. With QWENBOT_METRICS_PORT, the last two are served on that port instead (see
BotRuntime), and the public Events API port serves /slack/events alone.

Served by uvicorn (asyncio, so an idle or slow connection costs no thread) with a Starlette app in
front of Bolt's sync `App`, within limits a public endpoint needs: a listen backlog for bursts, a
cap on connections, a body cap checked before anything is parsed (the signature is checked by Bolt
before it parses JSON), a bound on header size, and a time limit on slow clients.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from slack_bolt import App
from slack_bolt.adapter.starlette.handler import to_bolt_request, to_starlette_response
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from uvicorn.protocols.http.h11_impl import H11Protocol

from bot.config import SlackConfig

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
HEALTH_PATH = "/healthz"
METRICS_PATH = "/metrics"
BACKLOG = 2048  # connections the kernel queues before accepting: a burst of events is not reset
KEEP_ALIVE_SECONDS = 5  # an idle kept-alive connection is closed after this
MAX_HEADER_BYTES = 16 * 1024  # request line and headers; Slack's are well under 2 KiB
STARTUP_SECONDS = 10.0  # uvicorn's event loop is up within this, or starting failed


@dataclass(frozen=True)
class HttpLimits:
    max_body_bytes: int = 1024 * 1024  # Slack's payloads are a few KiB
    max_connections: int = 1000  # open connections and requests in progress; beyond: 503
    read_timeout: float = 10.0  # seconds a client may take to send its headers, and then its body

    @classmethod
    def from_config(cls, config: SlackConfig) -> HttpLimits:
        return cls(config.http_max_body_bytes, config.http_max_connections, config.http_read_timeout)


class _BodyTooLarge(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused past `limit` bytes: from Content-Length before reading, and while reading
    (a chunked body has no length), so an oversized one is never held in memory."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _BodyTooLarge
    parts: list[bytes] = []
    size = 0
    async for part in request.stream():
        size += len(part)
        if size > limit:
            raise _BodyTooLarge
        parts.append(part)
    return b"".join(parts)


def make_asgi_app(
    app: App | None,
    health: Callable[[], dict[str, Any]] | None,
    limits: HttpLimits,
    metrics: CollectorRegistry | None = None,
) -> Starlette:
    """The routes of what is given: the Events API for `app`, /healthz for `health`, /metrics for
    `metrics`; any other path is a 404."""
    routes: list[Route] = []
    if app is not None:
        routes.append(Route(EVENTS_PATH, _events_endpoint(app, limits), methods=["POST"]))
    if health is not None:
        check = health

        async def healthz(request: Request) -> Response:
            report = await run_in_threadpool(check)
            return JSONResponse(report, status_code=200 if report.get("ok") else 503)

        routes.append(Route(HEALTH_PATH, healthz))
    if metrics is not None:
        registry = metrics

        async def scrape(request: Request) -> Response:
            # off the event loop: the index's size is read from Chroma at each scrape
            return Response(await run_in_threadpool(generate_latest, registry), media_type=CONTENT_TYPE_LATEST)

        routes.append(Route(METRICS_PATH, scrape))
    return Starlette(routes=routes)


def _events_endpoint(app: App, limits: HttpLimits) -> Callable[[Request], Awaitable[Response]]:
    async def events(request: Request) -> Response:
        try:
            async with asyncio.timeout(limits.read_timeout):
                body = await _read_body(request, limits.max_body_bytes)
        except _BodyTooLarge:
            return PlainTextResponse("request body too large\n", status_code=413, headers={"Connection": "close"})
        except TimeoutError:
            return PlainTextResponse("request body too slow\n", status_code=408, headers={"Connection": "close"})
        # Bolt checks the signature before it parses the body, and acks at once (the listeners run on
        # the bot's worker pool); the threadpool keeps its blocking work off the event loop
        bolt_request = to_bolt_request(request, body)
        return to_starlette_response(await run_in_threadpool(app.dispatch, bolt_request))

    return events


class _Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, plus a limit on how long a client may take to send a request's
    headers (uvicorn has none: a client sending half a request line would hold its slot forever)."""

    read_timeout = HttpLimits.read_timeout  # set per server in HttpServer

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def _arm_header_timer(self) -> None:
        self._header_timer = self.loop.call_later(self.read_timeout, self._headers_too_slow)

    def _headers_too_slow(self) -> None:
        if self.cycle is None or self.cycle.response_complete:  # still no complete request line + headers
            self.transport.close()

    def handle_events(self) -> None:
        cycle = self.cycle
        super().handle_events()
        if self.cycle is not cycle:  # a request's headers are in: its body has its own limit
            self._header_timer.cancel()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._header_timer.cancel()
        self._arm_header_timer()  # the next request on this connection gets the same time

    def connection_lost(self, exc: Exception | None) -> None:
        self._header_timer.cancel()
        super().connection_lost(exc)


class HttpServer:
    """uvicorn serving the Events API from a thread. It listens once built (port 0 picks a free port);
    `start()` returns once it serves, `stop()` stops taking connections, lets requests in progress
    finish, and returns when it is down. Each of `app` (/slack/events), `health` (/healthz) and
    `metrics` (the registry /metrics serves) may be None: that path is not served then."""

    def __init__(
        self,
        app: App | None,
        host: str,
        port: int,
        health: Callable[[], dict[str, Any]] | None,
        limits: HttpLimits | None = None,
        metrics: CollectorRegistry | None = None,
    ) -> None:
        limits = limits or HttpLimits()
        protocol = type("Protocol", (_Protocol,), {"read_timeout": limits.read_timeout})
        config = uvicorn.Config(
            make_asgi_app(app, health, limits, metrics),
            http=protocol,
            lifespan="off",
            log_config=None,  # the bot's logging setup stays as it is
            access_log=False,
            backlog=BACKLOG,
            limit_concurrency=limits.max_connections,
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
            timeout_graceful_shutdown=KEEP_ALIVE_SECONDS,
            h11_max_incomplete_event_size=MAX_HEADER_BYTES,
        )
        # bound here, so a port in use is an OSError for the caller (uvicorn would exit the process)
        self._socket = socket.create_server((host, port), backlog=BACKLOG)
        self.port: int = self._socket.getsockname()[1]
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name="qwenbot-http", daemon=True
        )

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + STARTUP_SECONDS
        while not self._server.started:  # uvicorn sets a flag, with nothing to wait on: poll it
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise OSError(f"the HTTP server on port {self.port} did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join()
        self._socket.close()

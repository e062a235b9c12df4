"""The HTTP transport: POST /slack/events to the Bolt app, GET /healthz for load balancers."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from slack_bolt import App, BoltRequest

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
HEALTH_PATH = "/healthz"


def make_http_server(app: App, host: str, port: int, health: Callable[[], dict[str, Any]]) -> ThreadingHTTPServer:
    """A threaded HTTP server: POST /slack/events goes to the Bolt app (which checks the signature and
    acks at once), GET /healthz reports health. Call serve_forever() on it; port 0 picks a free port."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("http: " + format, *args)

        def do_GET(self) -> None:
            if self.path.partition("?")[0] != HEALTH_PATH:
                self._send(404, b"not found\n", "text/plain")
                return
            report = health()
            self._send(200 if report.get("ok") else 503, json.dumps(report).encode(), "application/json")

        def do_POST(self) -> None:
            path, _, query = self.path.partition("?")
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode("utf-8") if length else ""
            if path != EVENTS_PATH:
                self._send(404, b"not found\n", "text/plain")
                return
            response = app.dispatch(BoltRequest(body=body, query=query, headers=dict(self.headers.items())))
            headers = {k: str(v[0] if isinstance(v, list | tuple) else v) for k, v in response.headers.items()}
            content_type = headers.pop("content-type", "text/plain;charset=utf-8")
            self._send(response.status, (response.body or "").encode(), content_type, headers)

        def _send(self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                if key.lower() != "content-length":
                    self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

    server = _Server((host, port), Handler)
    server.daemon_threads = True
    return server


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # a client hanging up mid-request is routine; log it instead of printing a traceback
        log.debug("http: connection from %s ended with an error", client_address[0], exc_info=True)

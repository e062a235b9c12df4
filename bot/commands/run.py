"""`qwenbot run`: the Slack bot. Socket Mode when SLACK_APP_TOKEN is set (no public URL needed);
`--http` serves the Events API at /slack/events, plus /healthz for load balancers."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from slack_bolt import App, BoltRequest
from slack_bolt.error import BoltError
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.answer import AnswerPipeline
from bot.llm import build_client
from bot.policy import Policy, PolicyError
from bot.settings import Settings
from bot.slack_app import build_app, make_client
from bot.state import State
from retrieval import store
from retrieval.indexer import Indexer
from retrieval.search import IndexInfo, Searcher

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
HEALTH_PATH = "/healthz"


class BotRuntime:
    """Everything a running bot holds: the searcher (and with it the local index lock), the model
    client, the answer pipeline, its SQLite state, the Bolt app, and the periodic re-indexer."""

    def __init__(self, settings: Settings, client: WebClient | None = None) -> None:
        self.settings = settings
        self.config = settings.index_config()
        self.started = time.time()
        self.last_reindex_error: str | None = None
        self._stop = threading.Event()
        self._closers: list[Callable[[], None]] = []
        try:
            self.policy = Policy.from_settings(settings)
            self.state = State(settings.state_db, settings.dedupe_ttl_hours)
            self._closers.append(self.state.close)
            # with a local index folder the searcher holds its lock for the bot's lifetime (a Chroma
            # folder is single-process), so re-indexing happens here, in-process
            self.searcher = Searcher(self.config)
            self._closers.append(self.searcher.close)
            self.llm = build_client(settings)
            self.pipeline = AnswerPipeline(settings, self.searcher, self.llm)
            self.client = client or make_client(settings)
            self.app = build_app(settings, self.pipeline, self.state, self.client, policy=self.policy,
                                 status_report=self.status_report)
        except BaseException:
            self.close()
            raise
        if settings.reindex_interval_minutes > 0:
            thread = threading.Thread(target=self._reindex_loop, name="qwenbot-reindex", daemon=True)
            thread.start()

    def close(self) -> None:
        self._stop.set()
        while self._closers:
            try:
                self._closers.pop()()
            except Exception:
                log.exception("error while shutting down")

    # --- periodic re-indexing ---
    def _reindex_loop(self) -> None:
        interval = self.settings.reindex_interval_minutes * 60
        while not self._stop.wait(interval):
            self.reindex()

    def reindex(self) -> None:
        try:
            stats = Indexer(self.config).run([self.settings.docs_dir], progress=False)
        except Exception as exc:
            self.last_reindex_error = f"{type(exc).__name__}: {exc}"
            log.exception("re-indexing %s failed", self.settings.docs_dir)
            return
        self.last_reindex_error = None
        log.info("re-indexed %s: %d added, %d updated, %d removed, %d failed in %.1f s",
                 self.settings.docs_dir, stats.added, stats.updated, stats.removed, stats.failed, stats.seconds)

    # --- health ---
    def index_info(self) -> IndexInfo:
        return self.searcher.stats()

    def model_health(self) -> tuple[bool, str]:
        if self.llm is None:
            return True, "none configured: answers are quoted passages (extractive)"
        url = urllib.parse.urlsplit(self.settings.llm_base_url or "")
        host = f"{url.hostname}:{url.port}" if url.port else str(url.hostname)  # no credentials, no path
        try:
            self.llm.list_models()
        except Exception as exc:
            return False, f"`{self.settings.llm_model}` at `{host}`: unreachable ({_short(str(exc))})"
        return True, f"`{self.settings.llm_model}` at `{host}`: reachable"

    def health(self) -> dict[str, Any]:
        """For /healthz: cheap checks only (the model is checked by `/qwenbot status`)."""
        try:
            info = self.index_info()
        except Exception as exc:
            log.warning("health check: index unavailable: %s", exc)
            return {"ok": False, "index": f"unavailable: {_short(str(exc))}"}
        return {"ok": info.chunks > 0, "index_chunks": info.chunks, "index_documents": info.documents,
                "last_indexed": info.last_indexed, "uptime_seconds": round(time.time() - self.started)}

    def status_report(self) -> str:
        """The `/qwenbot status` reply."""
        try:
            info = self.index_info()
            index_ok = info.chunks > 0
            index_line = (f"{info.documents:,} documents in {info.chunks:,} chunks, "
                          f"last indexed {_when(info.last_indexed)}")
        except Exception as exc:
            index_ok, index_line = False, f"unavailable ({_short(str(exc))})"
        model_ok, model_line = self.model_health()
        counts = self.state.counts()
        lines = [
            f"*qwenbot status*: {':white_check_mark: healthy' if index_ok and model_ok else ':x: degraded'}",
            f"• Index: {index_line}",
            f"• Model: {model_line}",
            f"• Answered {counts['answers']:,} questions; {counts['feedback']:,} ratings received",
        ]
        if self.settings.reindex_interval_minutes > 0:
            lines.append(f"• Re-indexing every {self.settings.reindex_interval_minutes:g} min"
                         + (f"; last attempt failed: {_short(self.last_reindex_error)}"
                            if self.last_reindex_error else ""))
        return "\n".join(lines)


def _when(iso: str | None) -> str:
    if not iso:
        return "never"
    try:
        return datetime.fromisoformat(iso).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return iso


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- the HTTP transport --------------------------------------------------------------------------


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
            headers = {k: v[0] if isinstance(v, list | tuple) else v for k, v in response.headers.items()}
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


# --- the command ---------------------------------------------------------------------------------


def check_credentials(settings: Settings, http: bool) -> str | None:
    """What is missing to run in this mode, as one actionable line; None when all is there."""
    if settings.slack_bot_token is None:
        return "SLACK_BOT_TOKEN is not set (the Bot User OAuth Token, xoxb-..., from the app's OAuth page)"
    if http and settings.slack_signing_secret is None:
        return "SLACK_SIGNING_SECRET is not set (Basic Information > App Credentials); --http needs it"
    if not http and settings.slack_app_token is None:
        return ("SLACK_APP_TOKEN is not set (an app-level token, xapp-..., with connections:write) - "
                "set it for Socket Mode, or run with --http --port N behind a public URL")
    return None


def main(settings: Settings, args: argparse.Namespace) -> int:
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    problem = check_credentials(settings, args.http)
    if problem:
        print(f"qwenbot run: {problem}", file=sys.stderr)
        return 2
    try:
        runtime = BotRuntime(settings)
    except (PolicyError, store.StoreError) as exc:
        print(f"qwenbot run: {exc}", file=sys.stderr)
        return 2
    except (BoltError, SlackApiError, OSError) as exc:  # auth.test at startup: bad token, Slack unreachable
        print(f"qwenbot run: cannot start the Slack app ({exc}); check SLACK_BOT_TOKEN and "
              f"QWENBOT_SLACK_API_URL ({settings.slack_api_url})", file=sys.stderr)
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        if args.http:
            server = make_http_server(runtime.app, args.host, args.port, runtime.health)
            threading.Thread(target=server.serve_forever, name="qwenbot-http", daemon=True).start()
            log.info("serving the Events API on http://%s:%d%s (health: %s)", args.host,
                     server.server_address[1], EVENTS_PATH, HEALTH_PATH)
            _wait(stop)
            server.shutdown()
            server.server_close()
        else:
            from slack_bolt.adapter.socket_mode import SocketModeHandler

            assert settings.slack_app_token is not None
            handler = SocketModeHandler(runtime.app, settings.slack_app_token.get_secret_value())
            handler.connect()
            log.info("connected to Slack over Socket Mode")
            _wait(stop)
            handler.close()
    finally:
        runtime.close()
    return 0


def _wait(stop: threading.Event) -> None:
    try:
        while not stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass

"""`qwenbot run`: the Slack bot. Socket Mode when SLACK_APP_TOKEN is set (no public URL needed);
`--http` serves the Events API at /slack/events, plus /healthz for load balancers and /metrics for
Prometheus, unless QWENBOT_METRICS_PORT gives those a port of their own."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import threading
import time
import urllib.parse
from collections.abc import Callable

from slack_bolt.error import BoltError
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot import logs
from bot.answer.pipeline import AnswerPipeline
from bot.errors import ConfigError, StartupError
from bot.mcp.beside import serve_beside_bot
from bot.runtime import BotRuntime
from bot.settings import Settings
from bot.slack.http import EVENTS_PATH, HEALTH_PATH, METRICS_PATH, HttpLimits, HttpServer
from bot.text import redact_url

log = logging.getLogger(__name__)

BOT_TOKEN_FIX = "copy the Bot User OAuth Token (xoxb-…) from your Slack app's OAuth page into SLACK_BOT_TOKEN"
APP_TOKEN_FIX = (
    "put an app-level token (xapp-..., scope connections:write, from Basic Information > App-Level Tokens) "
    "in SLACK_APP_TOKEN, and turn Socket Mode on in the app's settings"
)


def slack_error(exc: SlackApiError) -> str:
    """Slack's error code (`invalid_auth`, `not_allowed_token_type`...): what an operator looks up."""
    return str(exc.response.get("error", "unknown error")) if exc.response is not None else "unknown error"


def open_socket_mode_url(client: WebClient, app_token: str) -> str:
    """apps.connections.open: a fresh websocket URL for Socket Mode (nothing connects to it here).

    Raises StartupError, one line, when Slack refuses the app-level token or cannot be reached."""
    try:
        return str(client.apps_connections_open(app_token=app_token)["url"])
    except SlackApiError as exc:
        raise StartupError(f"Slack refused SLACK_APP_TOKEN ({slack_error(exc)}): {APP_TOKEN_FIX}") from None
    except (SlackClientError, OSError) as exc:
        raise StartupError(
            f"cannot reach {redact_url(client.base_url)} to open a Socket Mode connection ({type(exc).__name__})"
        ) from None


def check_credentials(settings: Settings, http: bool) -> None:
    """Raises ConfigError naming what is missing to run in this mode."""
    if settings.slack_bot_token is None:
        raise ConfigError("SLACK_BOT_TOKEN is not set (the Bot User OAuth Token, xoxb-..., from the app's OAuth page)")
    if http and not settings.slack_signing_secret:  # empty: no request could ever pass the signature check
        missing = "is not set" if settings.slack_signing_secret is None else "is empty"
        raise ConfigError(f"SLACK_SIGNING_SECRET {missing} (Basic Information > App Credentials); --http needs it")
    if not http and settings.slack_app_token is None:
        raise ConfigError(
            "SLACK_APP_TOKEN is not set (an app-level token, xapp-..., with connections:write) - "
            "set it for Socket Mode, or run with --http --port N behind a public URL"
        )


def main(settings: Settings, args: argparse.Namespace) -> int:
    logs.configure(settings.log_level, settings.log_format)
    check_credentials(settings, args.http)
    # a bad setting is reported before Slack or the index are touched
    AnswerPipeline.check_config(settings.answer_config())
    try:
        runtime = BotRuntime(settings)
    except (BoltError, SlackApiError, OSError) as exc:  # auth.test at startup: bad token, Slack unreachable
        refused = exc if isinstance(exc, SlackApiError) else exc.__context__  # Bolt wraps it, raw reply and all
        if isinstance(refused, SlackApiError):
            raise StartupError(
                f"SLACK_BOT_TOKEN was refused by Slack ({slack_error(refused)}): {BOT_TOKEN_FIX}"
            ) from None
        raise StartupError(
            f"cannot start the Slack app ({exc}); check SLACK_BOT_TOKEN and "
            f"QWENBOT_SLACK_API_URL ({redact_url(settings.slack_api_url)})"
        ) from None
    stop_mcp = _serve_mcp(settings, runtime) if settings.mcp_port else None
    # SIGTERM (docker stop, Kubernetes) and Ctrl-C: stop taking events, drain, then exit 0
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        if args.http:
            server = events_server(runtime, args.host, args.port)
            _wait(stop)
            # no new connections from here (Slack retries elsewhere); requests in progress are acked
            server.stop()
        else:
            from slack_bolt.adapter.socket_mode import SocketModeHandler

            assert settings.slack_app_token is not None
            app_token = settings.slack_app_token.get_secret_value()
            # The URL is asked for here, not inside connect(): a refused token becomes one line, not
            # slack_sdk's logged error and SlackApiError traceback.
            url = open_socket_mode_url(runtime.client, app_token)
            handler = SocketModeHandler(runtime.app, app_token)
            hello = threading.Event()  # Slack's first message on a working connection
            handler.client.on_message_listeners.append(lambda raw: _on_message(raw, hello))
            handler.client.wss_uri = url  # connect() uses it (reconnects ask for new ones)
            try:
                handler.client.connect()  # the typed call SocketModeHandler.connect() makes
                _wait_connected(hello, stop, settings.slack_connect_timeout, url)
            except BaseException:
                handler.client.close()
                raise
            if not stop.is_set():
                log.info("connected to Slack over Socket Mode")
                _wait(stop)
            handler.client.close()  # Slack sends new events to the bot's other connections, if any
    finally:
        if stop_mcp is not None:
            stop_mcp()
        runtime.close()  # drains the answers in progress first
    return 0


def _serve_mcp(settings: Settings, runtime: BotRuntime) -> Callable[[], None]:
    """The MCP server on QWENBOT_MCP_PORT, over the bot's own searcher and model, counted in its metrics."""
    status = (settings.sources_config(), settings.state_config())
    try:
        return serve_beside_bot(
            settings.mcp_config(),
            runtime.searcher,
            settings.answer_config(),
            runtime.llm,
            runtime.metrics.registry,
            status,
        )
    except BaseException:
        runtime.close()
        raise


def events_server(runtime: BotRuntime, host: str, port: int) -> HttpServer:
    """The Events API server, started. It also serves /healthz and /metrics, unless the runtime serves
    them on QWENBOT_METRICS_PORT: the public port then takes /slack/events alone."""
    settings = runtime.settings
    own_port = bool(settings.metrics_port)
    try:
        server = HttpServer(
            runtime.app,
            host,
            port,
            None if own_port else runtime.health,
            HttpLimits.from_config(settings.slack_config()),
            None if own_port else runtime.metrics.registry,
        )
        server.start()
    except OSError as exc:
        raise StartupError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another --port") from None
    where = f"port {settings.metrics_port}" if own_port else f"{HEALTH_PATH} and {METRICS_PATH} on this port"
    log.info("serving the Events API on http://%s:%d%s (health and metrics: %s)", host, server.port, EVENTS_PATH, where)
    return server


def _on_message(raw: str, hello: threading.Event) -> None:
    try:
        message = json.loads(raw)
    except ValueError:
        return
    if isinstance(message, dict) and message.get("type") == "hello":
        hello.set()


def _wait_connected(hello: threading.Event, stop: threading.Event, timeout: float, url: str) -> None:
    """Until Slack says hello on the websocket: only then is the bot really connected. StartupError
    after `timeout` seconds (connect() itself only logs a failed handshake and leaves it to reconnects)."""
    deadline = time.monotonic() + timeout
    while not hello.wait(0.1):  # short waits: a signal (Ctrl-C) stops the wait too
        if stop.is_set():
            return
        if time.monotonic() > deadline:
            host = urllib.parse.urlsplit(url).hostname or "?"
            raise StartupError(
                f"no Socket Mode connection to {host} within {timeout:g}s (QWENBOT_SLACK_CONNECT_TIMEOUT): "
                "check that this machine can open websockets (wss, port 443) to Slack"
            )


def _wait(stop: threading.Event) -> None:
    while not stop.wait(1.0):  # a timed wait: the signal handlers get to run
        pass

"""`qwenbot run`: the Slack bot. Socket Mode when SLACK_APP_TOKEN is set (no public URL needed);
`--http` serves the Events API at /slack/events, plus /healthz for load balancers."""

from __future__ import annotations

import argparse
import logging
import signal
import threading

from slack_bolt.error import BoltError
from slack_sdk.errors import SlackApiError

from bot.answer.pipeline import AnswerPipeline
from bot.errors import ConfigError, StartupError
from bot.runtime import BotRuntime
from bot.settings import Settings
from bot.slack.http import EVENTS_PATH, HEALTH_PATH, HttpLimits, make_http_server
from bot.text import redact_url

log = logging.getLogger(__name__)


def check_credentials(settings: Settings, http: bool) -> None:
    """Raises ConfigError naming what is missing to run in this mode."""
    if settings.slack_bot_token is None:
        raise ConfigError("SLACK_BOT_TOKEN is not set (the Bot User OAuth Token, xoxb-..., from the app's OAuth page)")
    if http and settings.slack_signing_secret is None:
        raise ConfigError("SLACK_SIGNING_SECRET is not set (Basic Information > App Credentials); --http needs it")
    if not http and settings.slack_app_token is None:
        raise ConfigError(
            "SLACK_APP_TOKEN is not set (an app-level token, xapp-..., with connections:write) - "
            "set it for Socket Mode, or run with --http --port N behind a public URL"
        )


def main(settings: Settings, args: argparse.Namespace) -> int:
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    check_credentials(settings, args.http)
    AnswerPipeline.check_settings(settings)  # a bad setting is reported before Slack or the index are touched
    try:
        runtime = BotRuntime(settings)
    except (BoltError, SlackApiError, OSError) as exc:  # auth.test at startup: bad token, Slack unreachable
        raise StartupError(
            f"cannot start the Slack app ({exc}); check SLACK_BOT_TOKEN and "
            f"QWENBOT_SLACK_API_URL ({redact_url(settings.slack_api_url)})"
        ) from None
    # SIGTERM (docker stop, Kubernetes) and Ctrl-C: stop taking events, drain, then exit 0
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        if args.http:
            try:
                server = make_http_server(
                    runtime.app, args.host, args.port, runtime.health, HttpLimits.from_settings(settings)
                )
                server.start()
            except OSError as exc:
                raise StartupError(
                    f"cannot listen on {args.host}:{args.port} ({exc.strerror or exc}); choose another --port"
                ) from None
            log.info(
                "serving the Events API on http://%s:%d%s (health: %s)",
                args.host,
                server.port,
                EVENTS_PATH,
                HEALTH_PATH,
            )
            _wait(stop)
            # no new connections from here (Slack retries elsewhere); requests in progress are acked
            server.stop()
        else:
            from slack_bolt.adapter.socket_mode import SocketModeHandler

            assert settings.slack_app_token is not None
            handler = SocketModeHandler(runtime.app, settings.slack_app_token.get_secret_value())
            handler.connect()
            log.info("connected to Slack over Socket Mode")
            _wait(stop)
            handler.close()  # Slack sends new events to the bot's other connections, if any
    finally:
        runtime.close()  # drains the answers in progress first
    return 0


def _wait(stop: threading.Event) -> None:
    while not stop.wait(1.0):  # a timed wait: the signal handlers get to run
        pass

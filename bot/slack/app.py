"""The Bolt app: assembled from the answerer and the listeners (bot/slack/listeners/, one per surface).

Slack must get an ack within 3 s, so listeners run off the request thread (Bolt acks events itself
before the listener runs, with process_before_response=False); this works the same over HTTP and
Socket Mode. Each question is answered once: deliveries are deduplicated by event id, and by message,
in the bot's state (Slack retries, and a mention in a watched thread also arrives as a plain message event).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable

from slack_bolt import App
from slack_sdk import WebClient

from bot.settings import Settings
from bot.slack.answering import Answerer, Pipeline
from bot.slack.client import make_client
from bot.slack.listeners import register_listeners
from bot.slack.policy import Policy
from bot.slack.workers import Workers
from bot.state import State


def build_app(
    settings: Settings,
    pipeline: Pipeline,
    state: State,
    client: WebClient | None = None,
    *,
    policy: Policy | None = None,
    status_report: Callable[[], str] | None = None,
    workers: Workers | None = None,
) -> App:
    client = client or make_client(settings)
    policy = policy or Policy.from_settings(settings)
    # Socket Mode has no signatures to check. Without a signing secret, a random one: no HTTP request
    # can then be signed, so all are refused (never an empty key anyone could sign with).
    secret = (
        settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else secrets.token_hex(32)
    )
    app = App(
        client=client,
        signing_secret=secret,
        process_before_response=False,
        listener_executor=workers or Workers(),
        logger=logging.getLogger("bot.bolt"),
    )
    register_listeners(app, Answerer(settings, pipeline, state, client, policy), status_report)
    return app

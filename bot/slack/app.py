"""The Bolt app: assembled from the answerer and the listeners (bot/slack/listeners/, one per surface).

Slack must get an ack within 3 s, so listeners run off the request thread (Bolt acks events itself
before the listener runs, with process_before_response=False), on a pool of their own: answers run on
another (bot/slack/workers.py), so a command's, a click's or a modal's ack never waits for them. This
works the same over HTTP and Socket Mode. Each question is answered once: deliveries are deduplicated
by event id, and by message, in the bot's state (Slack retries, and a mention in a watched thread also
arrives as a plain message event).
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from slack_bolt import App
from slack_sdk import WebClient

from bot.metrics import Metrics
from bot.settings import Settings
from bot.slack.answering import Answerer, Pipeline
from bot.slack.client import make_client
from bot.slack.guard import StateGuard
from bot.slack.listeners import register_listeners
from bot.slack.listeners.commands import Reindexer
from bot.slack.policy import Policy
from bot.slack.signing import SignedRequests
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
    metrics: Metrics | None = None,
    answerer: Answerer | None = None,
    reindexer: Reindexer | None = None,
) -> App:
    """`answerer`: one built by the caller, who also resumes the questions of dead replicas with it."""
    client = client or make_client(settings)
    policy = policy or Policy.from_settings(settings, state)
    # Socket Mode has no signatures to check. Without a signing secret, a random one: no HTTP request
    # can then be signed, so all are refused (never an empty key anyone could sign with).
    secret = (
        settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else secrets.token_hex(32)
    )
    workers = workers or Workers()
    with _bolt_reads_no_token():
        app = App(
            client=client,
            signing_secret=secret,
            # ours checks signatures where Bolt's would (first, before anything reads the request)
            request_verification_enabled=False,
            before_authorize=SignedRequests(secret),
            process_before_response=False,
            listener_executor=workers.listeners,
            logger=logging.getLogger("bot.bolt"),
        )
    answerer = answerer or Answerer(settings, pipeline, state, client, policy, metrics or Metrics())
    app.use(StateGuard(answerer.state_monitor))  # events wait in Slack while the state database is down
    register_listeners(app, answerer, workers, status_report, reindexer)
    return app


@contextmanager
def _bolt_reads_no_token() -> Iterator[None]:
    """Bolt's App takes SLACK_BOT_TOKEN from the environment whenever it is given no `token`, so with
    our `client` (which carries the token from the settings) it got the token twice and warned "As you
    gave `client` as well, `token` will be unused." at every start. It is kept from reading it."""
    token = os.environ.pop("SLACK_BOT_TOKEN", None)
    try:
        yield
    finally:
        if token is not None:
            os.environ["SLACK_BOT_TOKEN"] = token

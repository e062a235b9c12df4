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

from bot.config import SlackConfig
from bot.knowledge.learned import LearnedAnswers
from bot.slack.answering import Answerer
from bot.slack.guard import StateGuard
from bot.slack.listeners import register_listeners
from bot.slack.listeners.commands import Reindexer
from bot.slack.signing import SignedRequests
from bot.slack.workers import Workers


def build_app(
    config: SlackConfig,
    client: WebClient,
    *,
    answerer: Answerer,
    workers: Workers,
    status_report: Callable[[], str],
    reindexer: Reindexer,
    learned: LearnedAnswers | None = None,
) -> App:
    """The app, from parts built by the caller (bot/runtime.py), who also resumes the questions of dead
    replicas with `answerer`. `workers` run the listeners and the answers."""
    # Socket Mode has no signatures to check. Without a signing secret, a random one: no HTTP request
    # can then be signed, so all are refused (never an empty key anyone could sign with).
    secret = config.slack_signing_secret.get_secret_value() if config.slack_signing_secret else secrets.token_hex(32)
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
    app.use(StateGuard(answerer.state_monitor))  # events wait in Slack while the state database is down
    register_listeners(app, answerer, workers, status_report, reindexer, learned)
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

"""Events API: mentions, DMs and follow-ups in the bot's threads become questions; assistant threads
(Slack's AI app container) get suggested prompts, a title, and the doc scope of the channel the user
is viewing.

A listener only reads the event: whatever needs the state (is this thread the bot's? the channel's
kind, the assistant thread's context) runs on the answer pool, each call held across an outage of the
state database (bot/slack/guard.py), so the listener's thread is free for the next ack at once and a
message taken just as an outage begins is not lost."""

from __future__ import annotations

import logging
import time
from typing import Any

from slack_bolt import App, BoltContext
from slack_sdk.errors import SlackApiError

from bot.slack.guard import StateUnavailable
from bot.slack.listeners import knowledge
from bot.slack.listeners.deps import EventDeps
from bot.slack.policy import MAX_SUGGESTED_PROMPTS
from bot.slack.questions import Incoming, Question, incoming_message
from bot.slack.render.notices import BUSY
from bot.text import short

log = logging.getLogger(__name__)

POPULAR_DAYS = 30  # suggested prompts: the most-asked answered questions of this many days
PROMPT_TITLE_LIMIT = 60  # characters of a suggested prompt's label (the whole question is sent)
THREAD_TITLE_LIMIT = 80


def register(app: App, deps: EventDeps) -> None:
    def on_event(body: dict[str, Any], event: dict[str, Any], context: BoltContext, *, mentioned: bool) -> None:
        if not mentioned:  # an auto channel's question, or a reply in an escalated thread
            knowledge.unmentioned(deps.knowledge, body, event, context.bot_user_id)
        incoming = incoming_message(
            deps.intake, body, event, bot_user=context.bot_user_id, bot_id=context.bot_id, mentioned=mentioned
        )
        if incoming is None or (incoming.question is None and _noted(deps, incoming)):
            return
        # taken up on the answer pool: this listener's thread is back for the next ack at once
        if not deps.workers.offer(knowledge.logged(take_up), deps, incoming, mentioned=mentioned):
            refused(deps, incoming)

    @app.event("app_mention")
    def on_mention(body: dict[str, Any], event: dict[str, Any], context: BoltContext) -> None:
        on_event(body, event, context, mentioned=True)

    @app.event("message")
    def on_message(body: dict[str, Any], event: dict[str, Any], context: BoltContext) -> None:
        on_event(body, event, context, mentioned=False)

    @app.event("assistant_thread_started")
    def on_assistant_thread_started(event: dict[str, Any]) -> None:
        deps.workers.submit(knowledge.logged(assistant_thread), deps, event, started=True)

    @app.event("assistant_thread_context_changed")
    def on_assistant_context_changed(event: dict[str, Any]) -> None:
        deps.workers.submit(knowledge.logged(assistant_thread), deps, event, started=False)

    @app.error
    def on_error(error: Exception, body: dict[str, Any]) -> None:
        log.error("unhandled error in a Slack listener (%s: %s)", type(error).__name__, error)


def _noted(deps: EventDeps, incoming: Incoming) -> bool:
    """Whether the channel's kind is known here already, or the event does not say it (no state call)."""
    kind = incoming.channel_type
    return kind is None or deps.questions.noted(incoming.channel, kind)


def take_up(deps: EventDeps, incoming: Incoming, *, mentioned: bool) -> None:
    """On the answer pool: tells the state the channel's kind, checks that a follow-up is in a thread
    of the bot's, titles a new assistant thread, and answers."""
    q = incoming.question
    try:
        if not _noted(deps, incoming):
            kind = str(incoming.channel_type)
            deps.monitor.held(lambda: deps.questions.note_channel_type(incoming.channel, kind))
        if q is not None and incoming.follow_up and not deps.monitor.held(lambda: _answered(deps, q)):
            return
        if q is not None and incoming.follow_up and knowledge.escalated(deps.knowledge, q.channel, q.thread_ts):
            return  # the experts were called in: replies there are theirs to answer
        if q is not None and q.is_dm:
            title_assistant_thread(deps, q)
    except StateUnavailable:  # the bot stops first; a sure question is still handled (the asker is told)
        if q is None or incoming.follow_up:
            log.error(
                "stopping while the state database is unreachable: a message in %s was not read", incoming.channel
            )
            return
    if q is not None:
        deps.answering.handle(q, mentioned=mentioned)


def _answered(deps: EventDeps, q: Question) -> bool:
    return deps.questions.answered_thread(q.channel, q.thread_ts)


def refused(deps: EventDeps, incoming: Incoming) -> None:
    """The answer pool is full: the asker of a question is told to ask again later."""
    q = incoming.question
    if q is None:
        return  # the channel's kind is noted with its next message
    try:
        if incoming.follow_up and not deps.monitor.held(lambda: _answered(deps, q)):
            return
    except StateUnavailable:
        return
    log.warning(
        "%d questions are waiting for an answer already: one in %s refused", deps.workers.waiting_limit, q.channel
    )
    deps.answering.notice(q, BUSY)


def assistant_thread(deps: EventDeps, event: dict[str, Any], *, started: bool) -> None:
    """Remembers the channel the user is viewing (its scope answers their questions there); a new
    thread also gets suggested prompts."""
    thread = event.get("assistant_thread") or {}
    channel, thread_ts = thread.get("channel_id"), thread.get("thread_ts")
    if not channel or not thread_ts:
        return
    viewing = (thread.get("context") or {}).get("channel_id")
    try:
        deps.monitor.held(lambda: deps.threads.set_context(channel, thread_ts, viewing))
        prompts = suggested_prompts(deps, viewing) if started else []
    except StateUnavailable:
        log.error("stopping while the state database is unreachable: an assistant thread in %s was not set up", channel)
        return
    if not prompts:
        return
    try:
        deps.client.assistant_threads_setSuggestedPrompts(
            channel_id=channel,
            thread_ts=thread_ts,
            title="Ask me about the docs, for example:",
            prompts=[{"title": short(p, PROMPT_TITLE_LIMIT), "message": p} for p in prompts],
        )
    except SlackApiError as exc:
        log.warning("assistant.threads.setSuggestedPrompts failed: %s", exc.response.get("error"))


def suggested_prompts(deps: EventDeps, viewing: str | None) -> list[str]:
    """Up to four prompts for a new assistant thread: the questions of the last 30 days asked by the
    most people (at least QWENBOT_SUGGEST_MIN_ASKERS) in the channel the user is viewing or the public
    channels its scope shares, that got an answer no one rated 👎; then the scope's configured prompts."""
    asked = deps.monitor.held(
        lambda: deps.questions.popular_questions(
            time.time() - POPULAR_DAYS * 86400,
            MAX_SUGGESTED_PROMPTS,
            deps.policy.question_pool(viewing),
            deps.suggest_min_askers,
        )
    )
    configured = deps.policy.options_for("", True, viewing).suggested_prompts
    prompts: dict[str, str] = {}
    for prompt in [*asked, *configured]:
        prompts.setdefault(prompt.casefold(), prompt)
    return list(prompts.values())[:MAX_SUGGESTED_PROMPTS]


def title_assistant_thread(deps: EventDeps, q: Question) -> None:
    """An assistant thread is titled after its first question (asked before anything is recorded in it)."""
    if deps.monitor.held(lambda: deps.threads.context(q.channel, q.thread_ts)) is None or deps.monitor.held(
        lambda: _answered(deps, q)
    ):
        return
    try:
        deps.client.assistant_threads_setTitle(
            channel_id=q.channel, thread_ts=q.thread_ts, title=short(q.text, THREAD_TITLE_LIMIT)
        )
    except SlackApiError as exc:
        log.warning("assistant.threads.setTitle failed: %s", exc.response.get("error"))

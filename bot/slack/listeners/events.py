"""Events API: mentions, DMs and follow-ups in the bot's threads become questions; assistant threads
(Slack's AI app container) get suggested prompts, a title, and the doc scope of the channel the user
is viewing."""

from __future__ import annotations

import logging
import time
from typing import Any

from slack_bolt import App, BoltContext
from slack_sdk.errors import SlackApiError

from bot.slack import render
from bot.slack.answering import Answerer
from bot.slack.policy import MAX_SUGGESTED_PROMPTS
from bot.slack.questions import Question, question_from
from bot.slack.workers import Workers
from bot.text import short

log = logging.getLogger(__name__)

POPULAR_DAYS = 30  # suggested prompts: the most-asked answered questions of this many days
PROMPT_TITLE_LIMIT = 60  # characters of a suggested prompt's label (the whole question is sent)
THREAD_TITLE_LIMIT = 80


def register(app: App, answerer: Answerer, workers: Workers) -> None:
    def on_event(body: dict[str, Any], event: dict[str, Any], context: BoltContext, *, mentioned: bool) -> None:
        question = question_from(
            answerer.settings,
            answerer.state,
            body,
            event,
            bot_user=context.bot_user_id,
            bot_id=context.bot_id,
            mentioned=mentioned,
        )
        if question is not None:
            if question.is_dm:
                title_assistant_thread(answerer, question)
            # answered on the answer pool: this listener's thread is back for the next ack at once
            if not workers.offer(answerer.handle, question, mentioned=mentioned):
                log.warning(
                    "%d questions are waiting for an answer already: one in %s refused",
                    workers.waiting_limit,
                    question.channel,
                )
                answerer.notice(question, render.BUSY)

    @app.event("app_mention")
    def on_mention(body: dict[str, Any], event: dict[str, Any], context: BoltContext) -> None:
        on_event(body, event, context, mentioned=True)

    @app.event("message")
    def on_message(body: dict[str, Any], event: dict[str, Any], context: BoltContext) -> None:
        on_event(body, event, context, mentioned=False)

    @app.event("assistant_thread_started")
    def on_assistant_thread_started(event: dict[str, Any]) -> None:
        assistant_thread(answerer, event, started=True)

    @app.event("assistant_thread_context_changed")
    def on_assistant_context_changed(event: dict[str, Any]) -> None:
        assistant_thread(answerer, event, started=False)

    @app.error
    def on_error(error: Exception, body: dict[str, Any]) -> None:
        log.error("unhandled error in a Slack listener (%s: %s)", type(error).__name__, error)


def assistant_thread(answerer: Answerer, event: dict[str, Any], *, started: bool) -> None:
    """Remembers the channel the user is viewing (its scope answers their questions there); a new
    thread also gets suggested prompts."""
    thread = event.get("assistant_thread") or {}
    channel, thread_ts = thread.get("channel_id"), thread.get("thread_ts")
    if not channel or not thread_ts:
        return
    viewing = (thread.get("context") or {}).get("channel_id")
    answerer.state.set_thread_context(channel, thread_ts, viewing)
    prompts = suggested_prompts(answerer, viewing) if started else []
    if not prompts:
        return
    try:
        answerer.client.assistant_threads_setSuggestedPrompts(
            channel_id=channel,
            thread_ts=thread_ts,
            title="Ask me about the docs, for example:",
            prompts=[{"title": short(p, PROMPT_TITLE_LIMIT), "message": p} for p in prompts],
        )
    except SlackApiError as exc:
        log.warning("assistant.threads.setSuggestedPrompts failed: %s", exc.response.get("error"))


def suggested_prompts(answerer: Answerer, viewing: str | None) -> list[str]:
    """Up to four prompts for a new assistant thread: the questions of the last 30 days asked by the
    most people (at least QWENBOT_SUGGEST_MIN_ASKERS) in the channel the user is viewing or the public
    channels its scope shares, that got an answer no one rated 👎; then the scope's configured prompts."""
    asked = answerer.state.popular_questions(
        time.time() - POPULAR_DAYS * 86400,
        MAX_SUGGESTED_PROMPTS,
        answerer.policy.question_pool(viewing),
        answerer.settings.suggest_min_askers,
    )
    configured = answerer.policy.options_for("", True, viewing).suggested_prompts
    prompts: dict[str, str] = {}
    for prompt in [*asked, *configured]:
        prompts.setdefault(prompt.casefold(), prompt)
    return list(prompts.values())[:MAX_SUGGESTED_PROMPTS]


def title_assistant_thread(answerer: Answerer, q: Question) -> None:
    """An assistant thread is titled after its first question (asked before anything is recorded in it)."""
    if answerer.state.thread_context(q.channel, q.thread_ts) is None or answerer.state.answered_thread(
        q.channel, q.thread_ts
    ):
        return
    try:
        answerer.client.assistant_threads_setTitle(
            channel_id=q.channel, thread_ts=q.thread_ts, title=short(q.text, THREAD_TITLE_LIMIT)
        )
    except SlackApiError as exc:
        log.warning("assistant.threads.setTitle failed: %s", exc.response.get("error"))

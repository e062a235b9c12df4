"""One question, answered in its thread: claimed once, checked against the channel policy, then the
answer pipeline's events streamed into a Slack reply. Any failure still ends with an apology."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from typing import Protocol

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.answer.records import Delta, Done, PipelineEvent, Status, Turn
from bot.settings import Settings
from bot.slack import render
from bot.slack.policy import Policy
from bot.slack.questions import Question
from bot.slack.reply import ThreadReply
from bot.slack.thread import ThreadHistory
from bot.state import State
from retrieval.models import SearchFilter

log = logging.getLogger(__name__)


class Pipeline(Protocol):
    def run(self, question: str, history: list[Turn], scope: SearchFilter | None = None) -> Iterator[PipelineEvent]: ...


def error_id() -> str:
    """A short id for one failure: in the apology the user sees and in the log line."""
    return uuid.uuid4().hex[:8]


class Answerer:
    def __init__(self, settings: Settings, pipeline: Pipeline, state: State, client: WebClient, policy: Policy) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.state = state
        self.client = client
        self.policy = policy
        self.history = ThreadHistory(client)

    def handle(self, q: Question, *, mentioned: bool) -> None:
        """Answers `q` unless it was already handled, is not allowed here, or the user is rate-limited."""
        if q.event_id and not self.state.claim(f"event:{q.event_id}"):
            log.info("event %s already handled (a retry)", q.event_id)
            return
        if not self.state.claim(f"message:{q.channel}:{q.ts}"):
            return
        if not self.policy.channel_allowed(q.channel, q.is_dm):
            if mentioned:
                self.notice(q, render.not_enabled())
            return
        wait = self.policy.wait_seconds(q.user)
        if wait:
            self.notice(q, render.rate_limited(wait))
            return
        if not q.text:
            self.notice(q, render.HELP)
            return
        self.answer(q)

    def answer(self, q: Question) -> None:
        reply = ThreadReply(self.client, q.channel, q.thread_ts, q.ts, user=q.user, team=q.team)
        try:
            reply.status(Status("searching").text)
            history = self.history.turns(q) if q.in_thread else []
            question_id = self.state.add_question(
                event_id=q.event_id, channel=q.channel, thread_ts=q.thread_ts, message_ts=q.ts, user=q.user, text=q.text
            )
            answer = None
            scope = self.policy.scope_for(q.channel, q.is_dm)
            for event in self.pipeline.run(q.text, history, scope):
                if isinstance(event, Status):
                    reply.status(event.text)
                elif isinstance(event, Delta):
                    reply.append(event.text)
                elif isinstance(event, Done):
                    answer = event.answer
            if answer is None:
                raise RuntimeError("the answer pipeline ended without an answer")
            if answer.model_error:
                log.warning("answered without the model in %s: %s", q.channel, answer.model_error)
            answer_id = self.state.add_answer(question_id, answer)
            ts = reply.finish(render.answer_messages(answer, answer_id, self.settings.stale_source_days))
            self.state.set_answer_message(answer_id, ts)
        except Exception:
            eid = error_id()
            log.exception("error %s while answering in %s (thread %s)", eid, q.channel, q.thread_ts)
            try:
                reply.say(render.apology(eid))
            except Exception:
                log.exception("could not post the apology for error %s", eid)

    def notice(self, q: Question, text: str) -> None:
        """A message only the asker sees, in the thread they asked in."""
        self.ephemeral(q.channel, q.user, text, q.thread_ts if q.in_thread else None)

    def ephemeral(self, channel: str, user: str, text: str, thread_ts: str | None) -> None:
        try:
            self.client.chat_postEphemeral(channel=channel, user=user, text=text, thread_ts=thread_ts)
        except SlackApiError as exc:
            log.warning("chat.postEphemeral failed: %s", exc.response.get("error"))

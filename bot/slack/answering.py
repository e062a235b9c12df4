"""One question, answered in its thread: claimed once, checked against the channel policy, then the
answer pipeline's events streamed into a Slack reply. Any failure still ends with an apology."""

from __future__ import annotations

import logging
import threading
import uuid
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.answer.records import Delta, Done, PipelineEvent, Status, Turn
from bot.errors import QwenbotError
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


INTERRUPTED = "Sorry, I was restarted before I could finish this answer. Please ask again in a moment."


def error_id() -> str:
    """A short id for one failure: in the apology the user sees and in the log line."""
    return uuid.uuid4().hex[:8]


class AnswerInterrupted(QwenbotError):
    """The bot is shutting down and its drain time is over: this answer stops where it is."""


class Interruptible:
    """The answer pipeline, cut off between two of its events once `interrupt()` is called (at the
    end of the shutdown drain), so an answer still running then ends with a message, not silence."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.interrupted = threading.Event()

    def interrupt(self) -> None:
        self.interrupted.set()

    def run(self, question: str, history: list[Turn], scope: SearchFilter | None = None) -> Iterator[PipelineEvent]:
        if self.interrupted.is_set():
            raise AnswerInterrupted("shutting down")
        for event in self.pipeline.run(question, history, scope):
            if self.interrupted.is_set():
                raise AnswerInterrupted("shutting down")
            yield event


class ThreadTurns:
    """One answer at a time per thread, in the order the questions came: a follow-up sent while the
    bot is still writing waits for that answer (and then has it in the thread's history)."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._queues: dict[tuple[str, str], deque[object]] = {}

    @contextmanager
    def turn(self, channel: str, thread_ts: str) -> Iterator[None]:
        key, me = (channel, thread_ts), object()
        with self._changed:
            queue = self._queues.setdefault(key, deque())
            queue.append(me)
            self._changed.wait_for(lambda: queue[0] is me)
        try:
            yield
        finally:
            with self._changed:
                queue.popleft()
                if not queue:
                    del self._queues[key]
                self._changed.notify_all()


class Answerer:
    def __init__(self, settings: Settings, pipeline: Pipeline, state: State, client: WebClient, policy: Policy) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.state = state
        self.client = client
        self.policy = policy
        self.history = ThreadHistory(client)
        self.turns = ThreadTurns()

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
            # recorded first: from now on the thread is the bot's, so a follow-up sent while this answer
            # is written is a question too (it waits its turn below)
            question_id = self.state.add_question(
                event_id=q.event_id, channel=q.channel, thread_ts=q.thread_ts, message_ts=q.ts, user=q.user, text=q.text
            )
            with self.turns.turn(q.channel, q.thread_ts):
                self._answer(q, reply, question_id)
        except AnswerInterrupted:
            log.warning("shutting down: the answer in %s (thread %s) was cut off", q.channel, q.thread_ts)
            # not marked done: a redelivery of this event after the restart is answered
            if q.event_id:
                self.state.release(f"event:{q.event_id}")
            self.state.release(f"message:{q.channel}:{q.ts}")
            try:
                reply.say(INTERRUPTED)
            except Exception:
                log.exception("could not say the answer in %s was cut off", q.channel)
        except Exception:
            eid = error_id()
            log.exception("error %s while answering in %s (thread %s)", eid, q.channel, q.thread_ts)
            try:
                reply.say(render.apology(eid))
            except Exception:
                log.exception("could not post the apology for error %s", eid)

    def _answer(self, q: Question, reply: ThreadReply, question_id: int) -> None:
        reply.status(Status("searching").text)
        history = self.history.turns(q) if q.in_thread else []
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
        ts = reply.finish(
            render.answer_messages(
                answer, answer_id, self.settings.stale_source_days, allow_mailto=self.settings.allow_mailto_links
            )
        )
        self.state.set_answer_message(answer_id, ts)

    def notice(self, q: Question, text: str) -> None:
        """A message only the asker sees, in the thread they asked in."""
        self.ephemeral(q.channel, q.user, text, q.thread_ts if q.in_thread else None)

    def ephemeral(self, channel: str, user: str, text: str, thread_ts: str | None) -> None:
        try:
            self.client.chat_postEphemeral(channel=channel, user=user, text=text, thread_ts=thread_ts)
        except SlackApiError as exc:
            log.warning("chat.postEphemeral failed: %s", exc.response.get("error"))

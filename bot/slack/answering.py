"""One question, answered in its thread: claimed once, checked against the channel policy, then the
answer pipeline's events streamed into a Slack reply. Any failure still ends with an apology.

While the state database is unreachable, a question waits (bot/slack/guard.py): its state calls are
made again once the database is back, and it is answered then. An answer that was written meanwhile
ends at once with its sources, and gets its feedback buttons once it is stored."""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.answer.records import Answer, Delta, Done, PipelineEvent, Status, Turn
from bot.config import SlackConfig
from bot.errors import QwenbotError
from bot.knowledge.filter import grounded, is_summon, open_question
from bot.logs import QuestionLog, UserHasher
from bot.metrics import Metrics
from bot.slack.guard import StateMonitor, StateUnavailable, unreachable
from bot.slack.policy import Policy
from bot.slack.questions import Question
from bot.slack.render.answer import answer_messages
from bot.slack.render.blocks import Message
from bot.slack.render.notices import HELP, apology, not_enabled, rate_limited
from bot.slack.reply import ThreadReply, post_ephemeral
from bot.slack.thread import ThreadHistory
from bot.state import State
from bot.state.claims import Lease
from retrieval.models import SearchFilter

log = logging.getLogger(__name__)


class Pipeline(Protocol):
    def run(self, question: str, history: list[Turn], scope: SearchFilter | None = None) -> Iterator[PipelineEvent]: ...


INTERRUPTED = "Sorry, I was restarted before I could finish this answer. Please ask again in a moment."
RESUMED = "I was restarted while answering this, so here is the answer from the start."
ANSWER_ID_BLOCKS = ("feedback", "ask_owner", "escalate")  # the blocks that name the stored answer


def _message_key(q: Question) -> str:
    return f"message:{q.channel}:{q.ts}"


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


class Answerer:
    def __init__(
        self,
        config: SlackConfig,
        pipeline: Pipeline,
        state: State,
        client: WebClient,
        policy: Policy,
        metrics: Metrics,
        *,
        hash_user: UserHasher,
        state_monitor: StateMonitor | None = None,
    ) -> None:
        self.config = config
        self.pipeline = pipeline
        self.state = state
        self.client = client
        self.policy = policy
        self.metrics = metrics
        self.state_monitor = state_monitor or StateMonitor(state.ping)
        self.held = self.state_monitor.held  # a state call, made again once an outage is over
        self.hash_user = hash_user
        self.history = ThreadHistory(client)
        # a mention in a channel with `answers: private`: answered to the asker alone; set where the
        # listeners are registered (bot/slack/private.py, which builds on this class)
        self.privately: Callable[[Question], Answer] | None = None

    def handle(self, q: Question, *, mentioned: bool, auto: bool = False) -> None:
        """Answers `q` unless it was already handled, is not allowed here, or the user is rate-limited.
        `auto`: a message in a `mode: auto` channel, answered only when the answer is grounded, and
        refused in silence (bot/slack/auto.py)."""
        try:
            if q.event_id and not self.held(lambda: self.state.claims.claim(f"event:{q.event_id}")):
                log.info("event %s already handled (a retry)", q.event_id)
                return
            # leased while it is handled: if this replica dies, another one answers it (see resume)
            lease = self.held(lambda: self.state.claims.claim_lease(_message_key(q), json.dumps(dataclasses.asdict(q))))
        except StateUnavailable:
            self._not_answered(q, self._reply(q))
            return
        if lease is None:
            return
        try:
            if auto:
                self._answer_unasked(q)
            else:
                self._handle_claimed(q, lease, mentioned=mentioned)
        except StateUnavailable:  # the rate limit could not be checked
            self._not_answered(q, self._reply(q))
        finally:
            self._finish(lease)

    def _handle_claimed(self, q: Question, lease: Lease, *, mentioned: bool) -> None:
        if not self.policy.channel_allowed(q.channel, q.is_dm):
            self.report(q, "refused", note="channel not enabled")
            if mentioned:
                self.notice(q, not_enabled())
            return
        wait = self.held(lambda: self.policy.wait_seconds(q.user))
        if wait:
            self.report(q, "refused", note="rate limited")
            self.notice(q, rate_limited(wait))
            return
        if not q.text and not q.in_thread:  # in a thread, a bare mention summons the bot to its question
            self.notice(q, HELP)
            return
        if self._private_here(q):
            self._answer_privately(q)
            return
        self.answer(q, resumed=lease.resumed)

    def _private_here(self, q: Question) -> bool:
        """A new question (not in a thread: a shared answer's follow-ups are answered as any answer's)
        in a channel with `answers: private`."""
        return (
            self.privately is not None
            and not (q.in_thread or q.is_dm)
            and self.policy.options_for(q.channel, q.is_dm).private_answers
        )

    def _answer_privately(self, q: Question) -> None:
        privately, started = self.privately, time.monotonic()
        if privately is None:
            return
        try:
            answer = privately(q)
        except StateUnavailable:  # stopping: told privately too
            log.error("stopping while the state database is unreachable: a question in %s was not answered", q.channel)
            self.notice(q, INTERRUPTED)
            return
        except Exception:
            eid = error_id()
            log.exception("error %s while answering privately in %s", eid, q.channel)
            self.report(q, "error", total=time.monotonic() - started, note=f"error {eid}")
            self.notice(q, apology(eid))
            return
        self.report(q, answer.mode, answer, total=time.monotonic() - started, note="answered privately")

    def _answer_unasked(self, q: Question) -> None:
        """Auto mode (a `mode: auto` channel's top-level message that reads as a question): the answer is
        written in full first and posted only when grounded; else, and over a rate limit (the person's
        or the channel's), silence (QWENBOT_AUTO_UNSURE_REACTION: 👀 where it was not sure). Nothing is
        recorded for a question left unanswered: its thread never becomes the bot's."""
        if not self.policy.channel_allowed(q.channel, q.is_dm):
            return
        if self.held(lambda: self.policy.wait_seconds(q.user) or self.policy.channel_wait_seconds(q.channel)):
            self.report(q, "refused", note="auto mode: rate limited")
            return
        started, answer = time.monotonic(), None
        for event in self.pipeline.run(q.text, [], self.policy.scope_for(q.channel, q.is_dm)):
            answer = event.answer if isinstance(event, Done) else answer
        if answer is None or not grounded(answer):
            self.report(q, "silent", answer, total=time.monotonic() - started, note="auto mode: not grounded")
            if self.config.auto_unsure_reaction:
                self._react(q, "eyes")
            return
        question_id = self.held(
            lambda: self.state.questions.add_question(
                event_id=q.event_id, channel=q.channel, thread_ts=q.thread_ts, message_ts=q.ts, user=q.user, text=q.text
            )
        )
        self._deliver(q, self._reply(q), question_id, answer, None)
        self.report(q, answer.mode, answer, total=time.monotonic() - started)

    def _react(self, q: Question, name: str) -> None:
        try:
            self.client.reactions_add(channel=q.channel, timestamp=q.ts, name=name)
        except SlackApiError as exc:
            log.warning("reactions.add failed: %s", exc.response.get("error"))

    def resume(self, lease: Lease) -> None:
        """Answers a question whose replica died while answering it (its lease ran out): once, here."""
        q = Question(**json.loads(lease.payload))
        try:
            if self.held(lambda: self.state.questions.answer_posted(q.channel, q.ts)):  # it died after posting
                return
            log.warning("answering in %s (thread %s): the replica answering it stopped", q.channel, q.thread_ts)
            if self._private_here(q):
                self._answer_privately(q)
            else:
                self.answer(q, resumed=True)
        except StateUnavailable:
            self._not_answered(q, self._reply(q))
        finally:
            self._finish(lease)

    def _finish(self, lease: Lease) -> None:
        try:
            self.held(lambda: self.state.claims.finish(lease.key))
        except StateUnavailable:
            log.error("stopping while the state database is unreachable: the lease %s was not ended", lease.key)

    def _not_answered(self, q: Question, reply: ThreadReply) -> None:
        """The bot stops while the state database is still unreachable, before this question got its
        answer: the asker is told to ask again, the log says where (never what)."""
        log.error(
            "stopping while the state database is unreachable: the question in %s (message %s) was not answered",
            q.channel,
            q.ts,
        )
        try:
            reply.say(INTERRUPTED, failure="the bot restarted")
        except Exception:
            log.exception("could not say the question in %s was not answered", q.channel)

    def _reply(self, q: Question) -> ThreadReply:
        return ThreadReply(self.client, q.channel, q.thread_ts, q.ts, user=q.user, team=q.team)

    def answer(self, q: Question, *, resumed: bool = False) -> None:
        started = time.monotonic()
        reply = self._reply(q)
        q, history = self._summoned(q)
        if not q.text:
            self.notice(q, HELP)
            return
        try:
            # recorded first: from now on the thread is the bot's, so a follow-up sent while this answer
            # is written is a question too (it waits its turn below)
            question_id = self.held(
                lambda: self.state.questions.add_question(
                    event_id=q.event_id,
                    channel=q.channel,
                    thread_ts=q.thread_ts,
                    message_ts=q.ts,
                    user=q.user,
                    text=q.text,
                )
            )
            with self._thread_turn(q), self.metrics.answers_in_flight.track_inprogress():
                if resumed:
                    reply.say(RESUMED)
                answer = self._answer(q, reply, question_id, history)
            self.report(q, answer.mode, answer, total=time.monotonic() - started)
        except AnswerInterrupted:
            log.warning("shutting down: the answer in %s (thread %s) was cut off", q.channel, q.thread_ts)
            # not marked done: a redelivery of this event after the restart is answered
            if q.event_id:
                self.state.claims.release(f"event:{q.event_id}")
            self.state.claims.release(_message_key(q))
            try:
                reply.say(INTERRUPTED, failure="the bot restarted")
            except Exception:
                log.exception("could not say the answer in %s was cut off", q.channel)
        except StateUnavailable:  # before the answer was written
            self._not_answered(q, reply)
        except Exception:
            eid = error_id()
            log.exception("error %s while answering in %s (thread %s)", eid, q.channel, q.thread_ts)
            self.report(q, "error", total=time.monotonic() - started, note=f"error {eid}")
            try:
                reply.say(apology(eid), failure=f"something went wrong (error id {eid})")
            except Exception:
                log.exception("could not post the apology for error %s", eid)

    @contextmanager
    def _thread_turn(self, q: Question) -> Iterator[None]:
        """The question's turn in its thread (Threads.turn, bot/state/threads.py), taken and given back across an outage
        of the state database."""

        def take() -> AbstractContextManager[None]:
            turn = self.state.threads.turn(q.channel, q.thread_ts, q.ts)
            turn.__enter__()
            return turn

        turn = self.held(take)
        try:
            yield
        finally:
            try:
                turn.__exit__(None, None, None)
            except Exception as exc:
                if not unreachable(exc):
                    raise
                # still recorded, and renewed by this replica: taken again and given back once it is back
                self.state_monitor.failed(exc)
                try:
                    self.held(lambda: take().__exit__(None, None, None))
                except StateUnavailable:
                    log.error("stopping while the state database is unreachable: a turn in %s stays", q.channel)

    def _summoned(self, q: Question) -> tuple[Question, list[Turn] | None]:
        """A mention in a thread that asks nothing of its own ("@qwenbot can you help?") asks the
        thread's open question: that question, and the thread before it as its history."""
        if not (q.in_thread and is_summon(q.text)):
            return q, None
        found = open_question(self.history.turns(q))
        if found is None:
            return q, None
        text, history = found
        return dataclasses.replace(q, text=text), history

    def _answer(self, q: Question, reply: ThreadReply, question_id: int, history: list[Turn] | None = None) -> Answer:
        reply.step(Status("searching"))
        if history is None:
            history = self.history.turns(q) if q.in_thread else []
        answer = None
        # in an assistant thread, the channel the user is viewing picks the scope
        viewing = self.held(lambda: self.state.threads.context(q.channel, q.thread_ts)) if q.is_dm else None
        scope = self.policy.scope_for(q.channel, q.is_dm, viewing)
        for event in self.pipeline.run(q.text, history, scope):
            if isinstance(event, Status):
                reply.step(event)
            elif isinstance(event, Delta):
                reply.append(event.text)
            elif isinstance(event, Done):
                answer = event.answer
        if answer is None:
            raise RuntimeError("the answer pipeline ended without an answer")
        self._deliver(q, reply, question_id, answer, viewing)
        return answer

    def _deliver(self, q: Question, reply: ThreadReply, question_id: int, answer: Answer, viewing: str | None) -> None:
        """Stores the answer and ends the reply with its sources and buttons. With the state database
        down, the reply ends at once without the buttons (they name the stored answer), which are added
        once the answer is stored."""
        answer_id = self._store(question_id, answer)
        messages = self.messages(q, answer, answer_id or 0, viewing)
        if answer_id is None:  # no stored answer to rate yet: its sources now, its buttons once it is stored
            messages = [
                Message(m.text, [b for b in m.blocks if b.get("block_id") not in ANSWER_ID_BLOCKS]) for m in messages
            ]
        ts = reply.finish(messages, answer)
        try:
            stored = answer_id or self.held(lambda: self.state.questions.add_answer(question_id, answer))
            self.held(lambda: self.state.questions.set_answer_message(stored, ts))
        except StateUnavailable:  # the asker has the answer; only the bot's record of it is missing
            log.error("stopping while the state database is unreachable: the answer in %s was not stored", q.channel)
            return
        if answer_id is None:
            self._show_buttons(q, ts, self.messages(q, answer, stored, viewing)[-1])

    def _store(self, question_id: int, answer: Answer) -> int | None:
        """The stored answer's id; None while the state database is unreachable."""
        if self.state_monitor.down:
            return None
        try:
            return self.state.questions.add_answer(question_id, answer)
        except Exception as exc:
            if not unreachable(exc):
                raise
            self.state_monitor.failed(exc)
            return None

    def messages(self, q: Question, answer: Answer, answer_id: int, viewing: str | None) -> list[Message]:
        options = self.policy.options_for(q.channel, q.is_dm, viewing)
        return answer_messages(
            answer,
            answer_id,
            self.config.stale_source_days,
            allow_mailto=self.config.allow_mailto_links,
            feedback_style=self.config.feedback_style,
            ask_owner=options.ask_channel is not None,
            escalate=options.experts is not None and not q.is_dm,  # escalated in the thread: a channel's
        )

    def _show_buttons(self, q: Question, ts: str, last: Message) -> None:
        """The answer's last message again, now with the feedback buttons of the stored answer."""
        try:
            self.client.chat_update(channel=q.channel, ts=ts, text=last.text, blocks=last.blocks)
        except SlackApiError as exc:
            log.warning(
                "chat.update failed (%s): the answer in %s has no feedback buttons",
                exc.response.get("error"),
                q.channel,
            )

    def report(
        self,
        q: Question,
        mode: str,
        answer: Answer | None = None,
        *,
        total: float | None = None,
        note: str | None = None,
    ) -> None:
        """The question's log line and metrics. An extractive answer is normal without a model: it is
        logged here, at INFO, like any other (a failing model is a warning where the call failed)."""
        timings = {**(answer.timings if answer else {}), **({"total": total} if total is not None else {})}
        self.metrics.question(mode, timings)
        usage = answer.usage if answer and (answer.usage.prompt_tokens or answer.usage.completion_tokens) else None
        QuestionLog(
            event_id=q.event_id,
            channel=q.channel,
            user=self.hash_user(q.user),
            mode=mode,
            # not_found lists the nearest documents, but cites none
            cited=answer.cited if answer else [],
            search_s=timings.get("search"),
            first_token_s=timings.get("first_token"),
            total_s=timings.get("total"),
            prompt_tokens=usage.prompt_tokens if usage else None,
            completion_tokens=usage.completion_tokens if usage else None,
            note=note or (answer.model_error if answer else None),
        ).emit(log)

    def notice(self, q: Question, text: str) -> None:
        """A message only the asker sees, in the thread they asked in."""
        post_ephemeral(self.client, q.channel, q.user, text, q.thread_ts if q.in_thread else None)

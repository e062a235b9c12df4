"""One reply in a Slack thread: a sign of work, the answer streamed as it is written, the final
message(s). Prefers Slack's chat streaming methods; where Slack refuses them, posts a placeholder and
edits it with chat.update at most about once a second.

The sign of work is, where Slack takes them, task steps in the stream itself (`task_update` chunks,
task_display_mode=timeline): "Searching the docs" (with the documents found as its sources), "Reading",
then "Writing the answer" / "Not in the docs" / "Model unavailable: quoting the docs" / "Model unavailable"
(an answer cut short, or a model failure with nothing quoted, ends that step as `error`). Where Slack
refuses task chunks, the status line (assistant.threads.setStatus) shows the stages instead, and the
answer streams as plain text; nothing of the answer is lost either way.

429s are retried by the WebClient's RateLimitErrorRetryHandler (it honours Retry-After)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.answer.records import Answer, Status
from bot.messages import DEFAULT
from bot.messages import message as text_of
from bot.slack import mrkdwn
from bot.slack.render.blocks import MARKDOWN_LIMIT, Block, Message, markdown_block
from bot.slack.render.tasks import (
    STEP_READ,
    STEP_SEARCH,
    STEP_WRITE,
    TaskStatus,
    found_details,
    outcome_status,
    outcome_step,
    reading_details,
    task_update,
)

log = logging.getLogger(__name__)

STREAM_MIN_CHARS = 128  # append to a stream in pieces of at least this much text...
STREAM_MAX_WAIT = 1.0  # ...or after this many seconds, whichever comes first
UPDATE_INTERVAL = 1.0  # chat.update is Tier 3: at most about one edit a second per message


class ThreadReply:
    """Not thread-safe: one worker drives one reply from start to end."""

    def __init__(
        self,
        client: WebClient,
        channel: str,
        thread_ts: str,
        message_ts: str,
        *,
        user: str | None = None,
        team: str | None = None,
        streaming: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.channel = channel
        self.thread_ts = thread_ts
        self.message_ts = message_ts  # the question: where the :eyes: reaction goes
        self.user = user
        self.team = team
        self.clock = clock
        self._use_status = True
        self._reacted = False
        self._last_status = ""
        self._use_stream = streaming
        self._raw = ""  # answer text as the model wrote it, up to the last look at it
        self._unseen: list[str] = []  # deltas since then: joined only when looked at, so appends stay linear
        self._unseen_chars = 0
        self._past_limit = False  # the text outgrew one message: the final messages carry it, nothing streams
        self._sent = ""  # neutralised text already shown in Slack
        self._stream_ts: str | None = None
        self._placeholder_ts: str | None = None
        self._last_write = 0.0
        self._use_tasks = streaming  # task steps live in the stream
        self._tasks: dict[str, tuple[str, TaskStatus]] = {}  # step id -> (title, status) as Slack shows it
        self._lang = DEFAULT  # the question's language (bot/messages.py), from the pipeline's first status

    @property
    def started(self) -> bool:
        return self._stream_ts is not None or self._placeholder_ts is not None

    @property
    def _showing_tasks(self) -> bool:
        """The stream shows task steps: the text goes with them as markdown_text chunks."""
        return self._use_tasks and bool(self._tasks)

    # --- sign of work ---
    def step(self, event: Status) -> None:
        """A stage of the answer pipeline: a task step in the stream where Slack takes them, else the
        status line."""
        self._lang = event.lang
        if self._use_tasks and self._send_tasks(self._stage_chunks(event)):
            return
        self.status(event.text)

    def _stage_chunks(self, event: Status) -> list[Block]:
        search, read = text_of("task_search", self._lang), text_of("task_read", self._lang)
        if event.stage == "searching":
            return [
                task_update(STEP_SEARCH, search, "in_progress"),
                task_update(STEP_READ, read, "pending"),
                task_update(STEP_WRITE, text_of("task_write", self._lang), "pending"),
            ]
        if event.stage == "reading":
            return [
                task_update(
                    STEP_SEARCH,
                    search,
                    "complete",
                    found_details(event.passages, event.documents),
                    event.found,
                ),
                task_update(STEP_READ, read, "in_progress", reading_details(event.reranked)),
            ]
        return self._writing_chunks()  # thinking / writing

    def _writing_chunks(self) -> list[Block]:
        """The steps before the answer done, "Writing the answer" in progress (once)."""
        if STEP_WRITE in self._tasks and self._tasks[STEP_WRITE][1] == "in_progress":
            return []
        return [
            *self._complete_open(but=STEP_WRITE),
            task_update(STEP_WRITE, text_of("task_write", self._lang), "in_progress"),
        ]

    def _complete_open(self, but: str) -> list[Block]:
        return [
            task_update(task_id, title, "complete")
            for task_id, (title, status) in self._tasks.items()
            if task_id != but and status in ("pending", "in_progress")
        ]

    def _send_tasks(self, chunks: list[Block], *, text: str = "") -> bool:
        """Sends task updates (and `text`, streamed after them); False when Slack refused them, and
        then no more are tried: the status line and plain streaming take over."""
        if not chunks and not text:
            return True
        payload = chunks + ([{"type": "markdown_text", "text": text}] if text else [])
        try:
            if self._stream_ts is None:
                resp = self.client.chat_startStream(
                    channel=self.channel,
                    thread_ts=self.thread_ts,
                    recipient_user_id=self.user,
                    recipient_team_id=self.team,
                    task_display_mode="timeline",
                    chunks=payload,
                )
                self._stream_ts = resp["ts"]
            else:
                self.client.chat_appendStream(channel=self.channel, ts=self._stream_ts, chunks=payload)
        except SlackApiError as exc:
            log.info("task steps refused (%s); showing a status line instead", _error(exc))
            self._use_tasks = False
            return False
        for chunk in chunks:
            self._tasks[chunk["id"]] = (chunk["title"], chunk["status"])
        self._sent += text
        self._last_write = self.clock()
        return True

    def status(self, text: str) -> None:
        """Show what the bot is doing; falls back to an :eyes: reaction where status is unavailable."""
        if text == self._last_status:
            return
        self._last_status = text
        if self._use_status:
            try:
                self.client.assistant_threads_setStatus(channel_id=self.channel, thread_ts=self.thread_ts, status=text)
                return
            except SlackApiError as exc:
                log.info("assistant.threads.setStatus refused (%s); using a reaction", _error(exc))
                self._use_status = False
        if not self._reacted:
            self._reacted = True
            try:
                self.client.reactions_add(channel=self.channel, timestamp=self.message_ts, name="eyes")
            except SlackApiError as exc:
                log.warning("reactions.add failed: %s", _error(exc))

    # --- the answer as it is written ---
    def append(self, delta: str) -> None:
        if self._past_limit:
            return
        self._unseen.append(delta)
        self._unseen_chars += len(delta)
        # Neutralising the text costs its whole length, so it is looked at only when something could
        # be sent: the first text, enough new text, or the wait is over. Piece-by-piece it would cost
        # the square of the answer's length.
        wait = STREAM_MAX_WAIT if self._stream_ts is not None else UPDATE_INTERVAL
        # (the first words go out at once, also into a stream the task steps started)
        if (
            self.started
            and self._sent
            and self._unseen_chars < STREAM_MIN_CHARS
            and self.clock() - self._last_write < wait
        ):
            return
        self._raw += "".join(self._unseen)
        self._unseen, self._unseen_chars = [], 0
        # stripped like the final text is, so what is shown stays a prefix of the final answer
        safe = mrkdwn.neutralize(self._raw[: mrkdwn.safe_prefix_length(self._raw)]).strip()
        if len(safe) > MARKDOWN_LIMIT:
            self._past_limit = True
            return
        if not safe.startswith(self._sent):
            return  # not extendable: the final message shows it all
        pending = safe[len(self._sent) :]
        if not pending.strip():
            return
        if self._use_stream and self._stream_ts is None and self._placeholder_ts is None:
            self._start_stream(safe)
        elif self._stream_ts is not None:
            if not self._sent or len(pending) >= STREAM_MIN_CHARS or self.clock() - self._last_write >= STREAM_MAX_WAIT:
                self._append_stream(pending)
        elif self._placeholder_ts is None:
            self._post_placeholder(safe)
        elif self.clock() - self._last_write >= UPDATE_INTERVAL:
            self._update_placeholder(safe)

    def _start_stream(self, text: str) -> None:
        try:
            resp = self.client.chat_startStream(
                channel=self.channel,
                thread_ts=self.thread_ts,
                markdown_text=text,
                recipient_user_id=self.user,
                recipient_team_id=self.team,
            )
        except SlackApiError as exc:
            log.info("chat.startStream refused (%s); editing a placeholder instead", _error(exc))
            self._use_stream = False
            self._post_placeholder(text)
            return
        self._stream_ts = resp["ts"]
        self._sent = text
        self._last_write = self.clock()

    def _append_stream(self, pending: str) -> None:
        if self._showing_tasks and self._send_tasks(self._writing_chunks(), text=pending):
            return
        try:
            assert self._stream_ts is not None  # set by _start_stream, which runs first
            self.client.chat_appendStream(channel=self.channel, ts=self._stream_ts, markdown_text=pending)
        except SlackApiError as exc:
            log.warning("chat.appendStream failed (%s); the final message will carry the text", _error(exc))
            return
        self._sent += pending
        self._last_write = self.clock()

    def _post_placeholder(self, text: str) -> None:
        resp = self._post(Message(text=mrkdwn.escape(text), blocks=[markdown_block(text)]))
        self._placeholder_ts = resp["ts"]
        self._sent = text
        self._last_write = self.clock()

    def _update_placeholder(self, text: str) -> None:
        assert self._placeholder_ts is not None  # set by _post_placeholder, which runs first
        try:
            self.client.chat_update(
                channel=self.channel, ts=self._placeholder_ts, text=mrkdwn.escape(text), blocks=[markdown_block(text)]
            )
        except SlackApiError as exc:
            log.warning("chat.update failed (%s); the final message will carry the text", _error(exc))
            return
        self._sent = text
        self._last_write = self.clock()

    # --- the end ---
    def finish(self, messages: list[Message], answer: Answer | None = None) -> str:
        """Deliver the final messages (the first replaces whatever was streamed). Returns the ts of
        the message carrying the feedback buttons (the last). `answer` names the last task step."""
        first, rest = messages[0], messages[1:]
        first_text = first.blocks[0]["text"]
        if self._stream_ts is not None:
            ts = self._finish_stream(first, first_text, answer)
        elif self._placeholder_ts is not None:
            self.client.chat_update(channel=self.channel, ts=self._placeholder_ts, text=first.text, blocks=first.blocks)
            ts = self._placeholder_ts
        else:
            ts = self._post(first)["ts"]
        for message in rest:
            ts = self._post(message)["ts"]
        return ts

    def _finish_stream(self, first: Message, first_text: str, answer: Answer | None) -> str:
        ts = self._stream_ts
        assert ts is not None
        title, details = outcome_step(answer) if answer is not None else (text_of("task_write", self._lang), None)
        status = outcome_status(answer) if answer is not None else "complete"
        closing = [
            *self._complete_open(but=STEP_WRITE),
            task_update(STEP_WRITE, title, status, details),
        ]
        if first_text.startswith(self._sent):
            tail = first_text[len(self._sent) :]
            if tail and not (self._showing_tasks and self._send_tasks(self._writing_chunks(), text=tail)):
                self.client.chat_appendStream(channel=self.channel, ts=ts, markdown_text=tail)
            # the streamed text is the answer: only what follows it (sources, buttons) is added
            self._stop_stream(ts, closing, blocks=first.blocks[1:] or None)
        else:
            # what was streamed differs from the final answer: close the stream, then replace it
            self._stop_stream(ts, closing)
            self.client.chat_update(channel=self.channel, ts=ts, text=first.text, blocks=first.blocks)
        return ts

    def _stop_stream(self, ts: str, chunks: list[Block], blocks: list[Block] | None = None) -> None:
        """chat.stopStream with the last task updates; without them if Slack refuses them now."""
        if self._showing_tasks:
            try:
                self.client.chat_stopStream(channel=self.channel, ts=ts, chunks=chunks, blocks=blocks)
                return
            except SlackApiError as exc:
                log.info("task steps refused at the end (%s); closing the stream without them", _error(exc))
                self._use_tasks = False
        self.client.chat_stopStream(channel=self.channel, ts=ts, blocks=blocks)

    def _failed_chunks(self, reason: str) -> list[Block]:
        """The step that was running shows `error` and the short reason (never a traceback); steps not
        reached yet say so."""
        return [
            task_update(task_id, title, "error", reason if status == "in_progress" else "not reached")
            for task_id, (title, status) in self._tasks.items()
            if status in ("pending", "in_progress")
        ]

    def say(self, text: str, failure: str = "stopped") -> str:
        """A short plain message from the bot (an apology, a note): closes any open stream first, its
        unfinished task steps marked as failed for `failure`."""
        if self._stream_ts is not None:
            try:
                self._stop_stream(self._stream_ts, self._failed_chunks(failure))
            except SlackApiError as exc:
                log.warning("chat.stopStream failed: %s", _error(exc))
            self._stream_ts = None
        return str(
            self.client.chat_postMessage(
                channel=self.channel, thread_ts=self.thread_ts, text=text, unfurl_links=False, unfurl_media=False
            )["ts"]
        )

    def _post(self, message: Message) -> Any:
        return self.client.chat_postMessage(
            channel=self.channel,
            thread_ts=self.thread_ts,
            text=message.text,
            blocks=message.blocks,
            unfurl_links=False,
            unfurl_media=False,
        )


def post_ephemeral(client: WebClient, channel: str, user: str, text: str, thread_ts: str | None) -> None:
    """A message only `user` sees; a refusal by Slack is logged, not raised."""
    try:
        client.chat_postEphemeral(channel=channel, user=user, text=text, thread_ts=thread_ts)
    except SlackApiError as exc:
        log.warning("chat.postEphemeral failed: %s", exc.response.get("error"))


def _error(exc: SlackApiError) -> str:
    try:
        return str(exc.response["error"])
    except (KeyError, TypeError):
        return type(exc).__name__

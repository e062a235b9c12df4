"""One reply in a Slack thread: a sign of work, the answer streamed as it is written, the final
message(s). Prefers Slack's chat streaming methods; where Slack refuses them, posts a placeholder and
edits it with chat.update at most about once a second.

429s are retried by the WebClient's RateLimitErrorRetryHandler (it honours Retry-After)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.slack import mrkdwn
from bot.slack.render import MARKDOWN_LIMIT, Message, markdown_block

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

    @property
    def started(self) -> bool:
        return self._stream_ts is not None or self._placeholder_ts is not None

    # --- sign of work ---
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
        if self.started and self._unseen_chars < STREAM_MIN_CHARS and self.clock() - self._last_write < wait:
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
            if len(pending) >= STREAM_MIN_CHARS or self.clock() - self._last_write >= STREAM_MAX_WAIT:
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
    def finish(self, messages: list[Message]) -> str:
        """Deliver the final messages (the first replaces whatever was streamed). Returns the ts of
        the message carrying the feedback buttons (the last)."""
        first, rest = messages[0], messages[1:]
        first_text = first.blocks[0]["text"]
        if self._stream_ts is not None:
            ts = self._finish_stream(first, first_text)
        elif self._placeholder_ts is not None:
            self.client.chat_update(channel=self.channel, ts=self._placeholder_ts, text=first.text, blocks=first.blocks)
            ts = self._placeholder_ts
        else:
            ts = self._post(first)["ts"]
        for message in rest:
            ts = self._post(message)["ts"]
        return ts

    def _finish_stream(self, first: Message, first_text: str) -> str:
        ts = self._stream_ts
        assert ts is not None
        if first_text.startswith(self._sent):
            tail = first_text[len(self._sent) :]
            if tail:
                self.client.chat_appendStream(channel=self.channel, ts=ts, markdown_text=tail)
            # the streamed text is the answer: only what follows it (sources, buttons) is added
            self.client.chat_stopStream(channel=self.channel, ts=ts, blocks=first.blocks[1:] or None)
        else:
            # what was streamed differs from the final answer: close the stream, then replace it
            self.client.chat_stopStream(channel=self.channel, ts=ts)
            self.client.chat_update(channel=self.channel, ts=ts, text=first.text, blocks=first.blocks)
        return ts

    def say(self, text: str) -> str:
        """A short plain message from the bot (not-found, apology): closes any open stream first."""
        if self._stream_ts is not None:
            try:
                self.client.chat_stopStream(channel=self.channel, ts=self._stream_ts)
            except SlackApiError as exc:
                log.warning("chat.stopStream failed: %s", _error(exc))
            self._stream_ts = None
        return self.client.chat_postMessage(
            channel=self.channel, thread_ts=self.thread_ts, text=text, unfurl_links=False, unfurl_media=False
        )["ts"]

    def _post(self, message: Message) -> Any:
        return self.client.chat_postMessage(
            channel=self.channel,
            thread_ts=self.thread_ts,
            text=message.text,
            blocks=message.blocks,
            unfurl_links=False,
            unfurl_media=False,
        )


def _error(exc: SlackApiError) -> str:
    try:
        return str(exc.response["error"])
    except (KeyError, TypeError):
        return type(exc).__name__

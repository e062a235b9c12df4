"""A thread's earlier messages, read from Slack, as conversation turns for the answer pipeline."""

from __future__ import annotations

import logging
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.answer.records import Turn
from bot.slack.questions import Question, plain_text

log = logging.getLogger(__name__)

HISTORY_TURNS = 10  # earlier messages of a thread given to the pipeline as context


class ThreadHistory:
    def __init__(self, client: WebClient) -> None:
        self.client = client
        self._me: dict[str, Any] | None = None

    def turns(self, q: Question) -> list[Turn]:
        """Earlier messages of the thread, oldest first, as conversation turns."""
        try:
            resp = self.client.conversations_replies(channel=q.channel, ts=q.thread_ts, limit=100)
        except SlackApiError as exc:
            log.warning(
                "conversations.replies failed (%s): answering without the thread's history", exc.response.get("error")
            )
            return []
        auth = self._auth()
        turns: list[Turn] = []
        messages: list[dict[str, Any]] = resp.get("messages") or []
        for message in messages:
            if message.get("ts") == q.ts:
                continue
            mine = message.get("user") == auth.get("user_id") or (
                message.get("bot_id") is not None and message.get("bot_id") == auth.get("bot_id")
            )
            text = plain_text(message.get("text") or "", auth.get("user_id"))
            if text:
                turns.append(Turn(role="assistant" if mine else "user", text=text))
        return turns[-HISTORY_TURNS:]

    def _auth(self) -> dict[str, Any]:
        """Who the bot is (user and bot ids), asked once."""
        if self._me is None:
            self._me = dict(self.client.auth_test().data)  # type: ignore[arg-type]
        return self._me

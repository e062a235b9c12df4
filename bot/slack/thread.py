"""A thread's earlier messages, read from Slack, as conversation turns for the answer pipeline."""

from __future__ import annotations

import logging
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.answer.records import Turn
from bot.slack.questions import Question, plain_text

log = logging.getLogger(__name__)

HISTORY_TURNS = 10  # earlier messages of a thread given to the pipeline as context
PAGE_SIZE = 200  # messages per conversations.replies call (Slack's advice: at most 200)
MAX_PAGES = 50  # a thread longer than this many pages is read from its start only (logged)
BOT_TURN_CHARS = 300  # of the bot's own answer: enough for the prompt to know what it said
# A source line of the bot's "*Sources*" section (bot/slack/render/sources.py): "[1] <url|Title> · heading"
# or "[1] *Title* `path` · heading"
_SOURCE_LINE = re.compile(r"^\[\d+\]\s+(?:<[^|>]*\|(?P<linked>[^>]*)>|\*(?P<bold>[^*]+)\*|`(?P<path>[^`]+)`)", re.M)


@dataclass
class _Turn:
    mine: bool
    text: str
    titles: list[str] = field(default_factory=list)


class ThreadHistory:
    def __init__(self, client: WebClient) -> None:
        self.client = client
        self._me: dict[str, Any] | None = None

    def turns(self, q: Question) -> list[Turn]:
        """The newest earlier messages of the thread, oldest first, as conversation turns.

        The bot's own answers become short turns: the start of the answer and the titles it cited, so
        that the model sees what it said and retrieval sees what it was about, not pages of text."""
        messages = self._replies(q)
        if messages is None:
            return []
        auth = self._auth()
        turns: list[_Turn] = []
        for message in messages:
            if message.get("ts") == q.ts:
                continue
            mine = message.get("user") == auth.get("user_id") or (
                message.get("bot_id") is not None and message.get("bot_id") == auth.get("bot_id")
            )
            text = plain_text(message.get("text") or "", auth.get("user_id"))
            titles = _cited_titles(message) if mine else []
            if turns and mine and turns[-1].mine:  # a long answer's later parts: only their sources matter
                turns[-1].titles += titles
            elif text or titles:
                turns.append(_Turn(mine, text, titles))
        return [_as_turn(t) for t in turns[-HISTORY_TURNS:]]

    def _replies(self, q: Question) -> deque[dict[str, Any]] | None:
        """The thread's messages, paged to the end with the cursor; only the newest few are kept."""
        kept: deque[dict[str, Any]] = deque(maxlen=2 * HISTORY_TURNS + 1)  # room for multi-part answers
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            try:
                resp = self.client.conversations_replies(
                    channel=q.channel, ts=q.thread_ts, limit=PAGE_SIZE, cursor=cursor
                )
            except SlackApiError as exc:
                log.warning(
                    "conversations.replies failed (%s): answering without the thread's history",
                    exc.response.get("error"),
                )
                return None
            kept.extend(resp.get("messages") or [])
            cursor = (resp.get("response_metadata") or {}).get("next_cursor") or None
            if not resp.get("has_more") or not cursor:
                return kept
        log.warning(
            "thread %s in %s has more than %d pages: its newest messages are not read",
            q.thread_ts,
            q.channel,
            MAX_PAGES,
        )
        return kept

    def _auth(self) -> dict[str, Any]:
        """Who the bot is (user and bot ids), asked once."""
        if self._me is None:
            self._me = dict(self.client.auth_test().data)  # type: ignore[arg-type]
        return self._me


def _cited_titles(message: dict[str, Any]) -> list[str]:
    """The titles in the message's "*Sources*" section (not "*Closest documents*": nothing was cited)."""
    titles: list[str] = []
    for block in message.get("blocks") or []:
        text = (block.get("text") or {}).get("text", "") if block.get("type") == "section" else ""
        if isinstance(text, str) and text.startswith("*Sources*"):
            for m in _SOURCE_LINE.finditer(text):
                title = plain_text(m.group("linked") or m.group("bold") or m.group("path") or "", None)
                if title and title not in titles:
                    titles.append(title)
    return titles


def _as_turn(turn: _Turn) -> Turn:
    if not turn.mine:
        return Turn(role="user", text=turn.text)
    text = turn.text
    if len(text) > BOT_TURN_CHARS:
        text = text[:BOT_TURN_CHARS].rsplit(" ", 1)[0] + " …"
    if turn.titles:
        text = f"{text} Sources: {'; '.join(turn.titles)}".strip()
    return Turn(role="assistant", text=text)

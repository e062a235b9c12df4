"""Which Slack messages are questions for the bot, and what the question says in plain words."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from bot.settings import Settings
from bot.slack import mrkdwn
from bot.state import State


@dataclass(frozen=True)
class Question:
    """A message the bot will answer, with where the answer goes."""

    event_id: str | None
    channel: str
    is_dm: bool
    user: str
    team: str | None
    text: str
    ts: str  # the question message
    thread_ts: str  # the thread the answer goes to (the question's own ts when it starts one)

    @property
    def in_thread(self) -> bool:
        return self.thread_ts != self.ts


def question_from(
    settings: Settings,
    state: State,
    body: dict[str, Any],
    event: dict[str, Any],
    *,
    bot_user: str | None,
    bot_id: str | None,
    mentioned: bool,
) -> Question | None:
    """The question in a `message` or `app_mention` event, or None when the bot should stay quiet."""
    subtype = event.get("subtype")
    if subtype not in (None, "thread_broadcast", "file_share"):
        return None  # edits, deletions, joins, the bot's own posts...
    if event.get("user") == bot_user or (event.get("bot_id") and event.get("bot_id") == bot_id):
        return None
    if (event.get("bot_id") or subtype == "bot_message") and not settings.answer_other_bots:
        return None
    channel = event.get("channel", "")
    if channel and event.get("channel_type"):
        # whether questions asked here may ever be shown to others (suggested prompts, the gap digest)
        state.note_channel_type(channel, event["channel_type"])
    is_dm = event.get("channel_type") == "im" or channel.startswith("D")
    ts = event.get("ts", "")
    thread_ts = event.get("thread_ts") or ts
    text = event.get("text") or ""
    if not mentioned and not is_dm:
        if bot_user and f"<@{bot_user}>" in text:
            return None  # the app_mention event for this message answers it
        if not settings.follow_up_without_mention or thread_ts == ts:
            return None
        if not state.answered_thread(channel, thread_ts):
            return None
    if not channel or not ts or not event.get("user"):
        return None
    return Question(
        event_id=body.get("event_id"),
        channel=channel,
        is_dm=is_dm,
        user=event["user"],
        team=body.get("team_id") or event.get("team"),
        text=plain_text(text, bot_user),
        ts=ts,
        thread_ts=thread_ts,
    )


def plain_text(text: str, bot_user: str | None) -> str:
    """Slack message text as plain words: the bot's own mention dropped, markup made inert.

    Unescaped before it is neutralised: what a person types as "<!channel>" arrives as
    "&lt;!channel&gt;", and only unescaped is it the sequence the model could repeat."""
    if bot_user:
        text = re.sub(rf"<@{re.escape(bot_user)}(?:\|[^>]*)?>", " ", text)
    return mrkdwn.neutralize(mrkdwn.unescape(text)).strip()

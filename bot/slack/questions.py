"""Which Slack messages are questions for the bot, and what the question says in plain words."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from bot.config import SlackConfig
from bot.slack import mrkdwn


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


@dataclass(frozen=True)
class Intake:
    """The settings that say which messages are questions."""

    answer_other_bots: bool  # QWENBOT_ANSWER_OTHER_BOTS
    follow_up_without_mention: bool  # QWENBOT_FOLLOW_UP_WITHOUT_MENTION

    @classmethod
    def from_config(cls, config: SlackConfig) -> Intake:
        return cls(config.answer_other_bots, config.follow_up_without_mention)


@dataclass(frozen=True)
class Incoming:
    """A message event as read without the state: the question it may be, and what the state must
    say or be told first (the events listener does that on the answer pool, see listeners/events.py)."""

    channel: str
    question: Question | None
    channel_type: str | None  # what kind of conversation its channel is, when the event says
    follow_up: bool  # a question only if the bot has answered, or is answering, in its thread


def incoming_message(
    intake: Intake,
    body: dict[str, Any],
    event: dict[str, Any],
    *,
    bot_user: str | None,
    bot_id: str | None,
    mentioned: bool,
) -> Incoming | None:
    """What a `message` or `app_mention` event brings; None when the bot has nothing to do with it."""
    subtype = event.get("subtype")
    if subtype not in (None, "thread_broadcast", "file_share"):
        return None  # edits, deletions, joins, the bot's own posts...
    if event.get("user") == bot_user or (event.get("bot_id") and event.get("bot_id") == bot_id):
        return None
    if (event.get("bot_id") or subtype == "bot_message") and not intake.answer_other_bots:
        return None
    channel = event.get("channel", "")
    # whether questions asked here may ever be shown to others (suggested prompts, the gap digest)
    channel_type = event.get("channel_type") if channel else None
    is_dm = event.get("channel_type") == "im" or channel.startswith("D")
    ts = event.get("ts", "")
    thread_ts = event.get("thread_ts") or ts
    text = event.get("text") or ""
    follow_up = not mentioned and not is_dm
    if follow_up and (
        (bot_user and f"<@{bot_user}>" in text)  # the app_mention event for this message answers it
        or not intake.follow_up_without_mention
        or thread_ts == ts
    ):
        question = None
    elif not channel or not ts or not event.get("user"):
        question = None
    else:
        question = Question(
            event_id=body.get("event_id"),
            channel=channel,
            is_dm=is_dm,
            user=event["user"],
            team=body.get("team_id") or event.get("team"),
            text=plain_text(text, bot_user),
            ts=ts,
            thread_ts=thread_ts,
        )
    if question is None and not channel_type:
        return None
    return Incoming(channel, question, channel_type or None, follow_up and question is not None)


def plain_text(text: str, bot_user: str | None) -> str:
    """Slack message text as plain words: the bot's own mention dropped, markup made inert.

    Unescaped before it is neutralised: what a person types as "<!channel>" arrives as
    "&lt;!channel&gt;", and only unescaped is it the sequence the model could repeat."""
    if bot_user:
        text = re.sub(rf"<@{re.escape(bot_user)}(?:\|[^>]*)?>", " ", text)
    return mrkdwn.neutralize(mrkdwn.unescape(text)).strip()

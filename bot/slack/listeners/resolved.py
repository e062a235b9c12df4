"""Resolved threads as a source: in a channel whose scope entry says `resolved_threads: true`, a ✅
(`white_check_mark`) that the thread's asker or an expert (someone who replied in it, or an admin) adds
to a person's reply marks the thread resolved: the bot reads the thread and saves a learned answer, the
parent message as the question and that reply as the answer, its poster as the author, through the same
path as "Save as answer" (scoped like every learned answer). Once per thread. Private channels only when
the scopes file lists them with the key; DMs never (Policy.resolved_threads)."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import App, BoltContext
from slack_sdk.errors import SlackApiError

from bot.slack.listeners.deps import KnowledgeDeps
from bot.slack.listeners.knowledge import REPLIES_LIMIT, keep, logged
from bot.slack.questions import plain_text

log = logging.getLogger(__name__)

RESOLVED = "white_check_mark"  # ✅


def register(app: App, deps: KnowledgeDeps) -> None:
    @app.event("reaction_added")
    def on_reaction(event: dict[str, Any], context: BoltContext) -> None:
        item = event.get("item") or {}
        channel, ts, user = item.get("channel"), item.get("ts"), event.get("user")
        if event.get("reaction") != RESOLVED or item.get("type") != "message" or not (channel and ts and user):
            return
        if deps.learned is None or str(channel).startswith("D"):
            return
        if not deps.workers.offer(logged(resolve), deps, str(channel), str(ts), str(user), context.bot_user_id):
            log.warning("the answer pool is full: a resolved mark in %s was not read", channel)


def resolve(deps: KnowledgeDeps, channel: str, ts: str, marker: str, bot_user: str | None) -> None:
    """On the answer pool: `marker` added ✅ to the message `ts` in `channel`."""
    kind = deps.monitor.held(lambda: deps.knowledge.channel_type(channel))
    if deps.learned is None or not deps.policy.resolved_threads(channel, kind):
        return
    thread = _thread(deps, channel, ts)
    if thread is None:
        return
    parent, replies = thread[0], thread[1:]
    reply = next(m for m in replies if m.get("ts") == ts)
    people = {m.get("user") for m in replies if m.get("user") and not m.get("bot_id")}
    if not reply.get("user") or reply.get("bot_id") or not parent.get("user") or parent.get("bot_id"):
        return  # the bot's answers are the docs' already; a bot's thread is no one's question
    if marker != parent.get("user") and marker not in people and marker not in deps.admins:
        log.info("a resolved mark in %s by someone who neither asked nor replied there was ignored", channel)
        return
    thread_ts = str(parent["ts"])
    key = f"resolved:{channel}:{thread_ts}"
    if not deps.monitor.held(lambda: deps.claims.claim(key)) or _kept(deps, channel, thread_ts):
        return  # marked before (by another ✅, another replica, or saved with "Save as answer")
    question, answer = plain_text(parent.get("text") or "", bot_user), plain_text(reply.get("text") or "", None)
    if not question or not answer:
        return
    try:
        keep(deps, marker, channel, thread_ts, str(reply["user"]), question, answer)
    except Exception:
        deps.claims.release(key)  # not saved: the next ✅ tries again
        raise
    log.info("a resolved thread in %s was saved as a learned answer", channel)


def _kept(deps: KnowledgeDeps, channel: str, thread_ts: str) -> bool:
    """Whether the thread was saved as a learned answer already (removed ones count: removed on purpose)."""
    learned = deps.monitor.held(lambda: deps.knowledge.learned_answers(include_removed=True))
    return any(a.channel == channel and a.thread_ts == thread_ts for a in learned)


def _thread(deps: KnowledgeDeps, channel: str, ts: str) -> list[dict[str, Any]] | None:
    """The thread that the reply `ts` is in, parent first; None when `ts` is not a reply in a thread.
    Slack answers conversations.replies for a reply's ts with the reply (its thread_ts says where it is)."""
    try:
        messages = deps.client.conversations_replies(channel=channel, ts=ts, limit=REPLIES_LIMIT).get("messages") or []
        reacted = next((m for m in messages if m.get("ts") == ts), None)
        thread_ts = (reacted or {}).get("thread_ts")
        if not thread_ts or thread_ts == ts:
            return None
        if messages[0].get("ts") != thread_ts:
            resp = deps.client.conversations_replies(channel=channel, ts=thread_ts, limit=REPLIES_LIMIT)
            messages = resp.get("messages") or []
    except SlackApiError as exc:
        log.warning(
            "conversations.replies failed (%s): a resolved thread in %s was not read",
            exc.response.get("error"),
            channel,
        )
        return None
    if not messages or messages[0].get("ts") != thread_ts or not any(m.get("ts") == ts for m in messages):
        return None
    return list(messages)

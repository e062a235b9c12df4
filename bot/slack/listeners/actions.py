"""Block actions: the feedback under each answer (Slack's feedback_buttons, or the plain 👍 / 👎
buttons; 👎 opens the reason modal and offers "Ask an owner"), "Ask an owner", and the digest's
"Mark as handled"."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App
from slack_sdk.errors import SlackApiError

from bot.gaps import render as gap_render
from bot.slack.listeners.deps import FeedbackDeps
from bot.slack.render.ask_owner import ACTION_ASK_OWNER, ask_owner_block, ask_owner_message, asked_owner_notice
from bot.slack.render.feedback import ACTION_DOWN, ACTION_FEEDBACK, ACTION_UP, feedback_modal, feedback_rating
from bot.slack.reply import post_ephemeral
from bot.state.questions import AskedQuestion
from bot.text import int_or_none

log = logging.getLogger(__name__)


def register(app: App, deps: FeedbackDeps) -> None:
    @app.action(ACTION_UP)
    def on_thumbs_up(ack: Ack, body: dict[str, Any]) -> None:
        ack()
        rated(deps, body, "up", _answer_id(body))

    @app.action(ACTION_DOWN)
    def on_thumbs_down(ack: Ack, body: dict[str, Any]) -> None:
        ack()
        rated(deps, body, "down", _answer_id(body))

    @app.action(ACTION_FEEDBACK)
    def on_feedback(ack: Ack, body: dict[str, Any]) -> None:
        ack()
        parsed = feedback_rating(_action(body).get("value"))
        if parsed is None:
            log.warning("feedback with an unknown value %r ignored", _action(body).get("value"))
            return
        rated(deps, body, parsed[0], parsed[1])

    @app.action(ACTION_ASK_OWNER)
    def on_ask_owner(ack: Ack, body: dict[str, Any]) -> None:
        ack()
        answer_id = _answer_id(body)
        if answer_id is not None:
            ask_owner(deps, body, answer_id)

    @app.action(gap_render.ACTION_GAP_HANDLED)
    def on_gap_handled(ack: Ack, body: dict[str, Any]) -> None:
        ack()
        group_id = int_or_none(_action(body).get("value"))
        if group_id is None or not deps.gaps.mark_handled(group_id, body["user"]["id"]):
            return  # unknown, or someone marked it already
        message = body.get("message") or {}
        channel = (body.get("channel") or {}).get("id")
        if channel and message.get("ts") and message.get("blocks"):
            blocks = gap_render.handled_blocks(message["blocks"], group_id)
            deps.client.chat_update(
                channel=channel, ts=message["ts"], text=message.get("text") or "Knowledge gaps", blocks=blocks
            )


def _action(body: dict[str, Any]) -> dict[str, Any]:
    action: dict[str, Any] = (body.get("actions") or [{}])[0]
    return action


def _answer_id(body: dict[str, Any]) -> int | None:
    return int_or_none(_action(body).get("value"))


def _where(body: dict[str, Any]) -> tuple[str | None, str | None]:
    """The channel and thread of the message the button is on."""
    message = body.get("message") or {}
    return (body.get("channel") or {}).get("id"), message.get("thread_ts") or message.get("ts")


def rated(deps: FeedbackDeps, body: dict[str, Any], rating: str, answer_id: int | None) -> None:
    """Stores the rating; 👍 is thanked, 👎 opens the reason modal and, for an answer whose scope has
    an owners' channel, offers to ask an owner."""
    if answer_id is None or not deps.questions.answer_exists(answer_id):
        log.warning("feedback for an unknown answer %r ignored", answer_id)
        return
    user = body["user"]["id"]
    deps.feedback.record(answer_id, user, rating)
    deps.metrics.feedback.labels(rating).inc()
    channel, thread_ts = _where(body)
    if rating == "up":
        if channel:
            post_ephemeral(deps.client, channel, user, "Thanks for the feedback!", thread_ts)
        return
    deps.client.views_open(trigger_id=body["trigger_id"], view=feedback_modal(answer_id))
    if channel and _ask_channel(deps, answer_id):
        try:
            deps.client.chat_postEphemeral(
                channel=channel,
                user=user,
                thread_ts=thread_ts,
                text="Sorry this didn't help. A doc owner may know: ask them?",
                blocks=[ask_owner_block(answer_id)],
            )
        except SlackApiError as exc:
            log.warning("chat.postEphemeral failed: %s", exc.response.get("error"))


def _ask_channel(deps: FeedbackDeps, answer_id: int) -> str | None:
    asked = deps.questions.question_for_answer(answer_id)
    if asked is None:
        return None
    is_dm = asked.channel.startswith("D")
    viewing = deps.threads.context(asked.channel, asked.thread_ts) if is_dm else None
    return deps.policy.options_for(asked.channel, is_dm, viewing).ask_channel


def ask_owner(deps: FeedbackDeps, body: dict[str, Any], answer_id: int) -> None:
    """Posts the answer's question to its scope's owners' channel (once per answer) and tells the
    asker where it went."""
    asked = deps.questions.question_for_answer(answer_id)
    ask_channel = _ask_channel(deps, answer_id)
    user = body["user"]["id"]
    channel, thread_ts = _where(body)
    if asked is None or ask_channel is None:
        log.warning("Ask an owner for answer %s: no owners' channel configured for its scope", answer_id)
        return
    if deps.claims.claim(f"ask-owner:{answer_id}"):
        try:
            post_to_owners(deps, asked, ask_channel)
        except Exception:
            deps.claims.release(f"ask-owner:{answer_id}")  # not posted: a second click tries again
            raise
    if channel:
        post_ephemeral(deps.client, channel, user, asked_owner_notice(ask_channel), thread_ts)


def post_to_owners(deps: FeedbackDeps, asked: AskedQuestion, ask_channel: str) -> None:
    permalink = None
    if not asked.channel.startswith("D"):  # a DM's thread is private: no link to it
        try:
            permalink = deps.client.chat_getPermalink(channel=asked.channel, message_ts=asked.thread_ts)["permalink"]
        except SlackApiError as exc:
            log.info("chat.getPermalink failed (%s); the post names the channel only", exc.response.get("error"))
    message = ask_owner_message(asked.text, asked.channel, permalink)
    deps.client.chat_postMessage(
        channel=ask_channel, text=message.text, blocks=message.blocks, unfurl_links=False, unfurl_media=False
    )

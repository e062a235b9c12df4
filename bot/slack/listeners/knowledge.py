"""Knowledge in Slack: "Still need help?" escalates a thread to its scope's experts (once per thread);
the first expert reply there brings a "Save as answer" offer; its modal saves a learned answer (indexed
at once, cited in the channel's scope only) and the saved notice's button removes it. Also the two
kinds of message the bot takes without a mention: a question in a `mode: auto` channel, and a
person's reply in an escalated thread (the bot stays out of those: they are for the experts)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any, ParamSpec

from slack_bolt import Ack, App, Respond
from slack_sdk.errors import SlackApiError

from bot.knowledge.filter import reads_as_question
from bot.slack.listeners.commands import AskPrivately
from bot.slack.listeners.deps import KnowledgeDeps
from bot.slack.private import PrivateAnswers
from bot.slack.questions import Question, plain_text
from bot.slack.render import knowledge as render
from bot.slack.render.notices import BUSY
from bot.slack.reply import post_ephemeral
from bot.slack.workers import Workers
from bot.state.knowledge import Escalation, NewLearned
from bot.text import int_or_none

log = logging.getLogger(__name__)

P = ParamSpec("P")
REPLIES_LIMIT = 200  # messages of an escalated thread read for the expert's reply


def register(app: App, deps: KnowledgeDeps) -> None:
    @app.action(render.ACTION_ESCALATE)
    def on_escalate(ack: Ack, body: dict[str, Any]) -> None:
        ack()
        escalate(deps, body)

    @app.action(render.ACTION_SAVE_OFFER)
    def on_save_offer(ack: Ack, body: dict[str, Any]) -> None:
        ack()
        open_save(deps, body)

    @app.action(render.ACTION_LEARNED_REMOVE)
    def on_remove(ack: Ack, body: dict[str, Any]) -> None:
        ack()
        remove(deps, body)

    @app.view(render.LEARNED_VIEW)
    def on_save(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        values = view.get("state", {}).get("values", {})
        question = (values.get(render.QUESTION_BLOCK, {}).get(render.QUESTION_ACTION, {}).get("value") or "").strip()
        answer = (values.get(render.ANSWER_BLOCK, {}).get(render.ANSWER_ACTION, {}).get("value") or "").strip()
        if not question or not answer:
            missing = render.QUESTION_BLOCK if not question else render.ANSWER_BLOCK
            ack(response_action="errors", errors={missing: "Write something here to save."})
            return
        ack()  # the modal closes; saving indexes the answer, which may take longer than Slack waits
        save(deps, body["user"]["id"], json.loads(view.get("private_metadata") or "{}"), question, answer)


def _action(body: dict[str, Any]) -> dict[str, Any]:
    action: dict[str, Any] = (body.get("actions") or [{}])[0]
    return action


def _where(body: dict[str, Any]) -> tuple[str | None, str | None]:
    message = body.get("message") or {}
    return (body.get("channel") or {}).get("id"), message.get("thread_ts") or message.get("ts")


def _tell(deps: KnowledgeDeps, body: dict[str, Any], text: str) -> None:
    channel, thread_ts = _where(body)
    if channel:
        post_ephemeral(deps.client, channel, body["user"]["id"], text, thread_ts)


# --- messages without a mention ---------------------------------------------------------------------


def unmentioned(deps: KnowledgeDeps, body: dict[str, Any], event: dict[str, Any], bot_user: str | None) -> None:
    """A person's message the bot was not mentioned in: a question in an auto channel is offered to
    the answer pool; a reply in a channel thread is checked (on the pool) for an escalation."""
    channel, ts, user = event.get("channel") or "", event.get("ts") or "", event.get("user")
    text = event.get("text") or ""
    if event.get("subtype") not in (None, "file_share", "thread_broadcast") or event.get("bot_id") or not user:
        return
    if user == bot_user or not channel or channel.startswith("D") or (bot_user and f"<@{bot_user}>" in text):
        return  # the bot's own, a DM, or a mention (the app_mention event handles it)
    thread_ts = event.get("thread_ts") or ts
    if thread_ts != ts:
        deps.workers.offer(logged(offer_save), deps, channel, thread_ts, user)
    elif deps.policy.options_for(channel, False).auto and reads_as_question(text):
        q = Question(
            event_id=body.get("event_id"),
            channel=channel,
            is_dm=False,
            user=user,
            team=body.get("team_id") or event.get("team"),
            text=plain_text(text, bot_user),
            ts=ts,
            thread_ts=ts,
        )
        deps.workers.offer(deps.answering.handle, q, mentioned=False, auto=True)


def logged(work: Callable[P, None]) -> Callable[P, None]:
    """`work` for the answer pool, whose failures would pass unseen: logged as a listener's are."""

    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            work(*args, **kwargs)
        except Exception as exc:
            log.error("unhandled error in a Slack listener (%s: %s)", type(exc).__name__, exc)

    return run


def escalated(deps: KnowledgeDeps, channel: str, thread_ts: str) -> bool:
    """Whether the thread was escalated: from then on its replies are for the experts, not the bot."""
    return deps.monitor.held(lambda: deps.knowledge.escalation(channel, thread_ts)) is not None


def offer_save(deps: KnowledgeDeps, channel: str, thread_ts: str, user: str) -> None:
    """The first reply of someone other than the asker in an escalated thread: the "Save as answer" offer."""
    esc = deps.monitor.held(lambda: deps.knowledge.escalation(channel, thread_ts))
    if esc is None or esc.offered_ts is not None or user == esc.asker or deps.learned is None:
        return
    if not deps.monitor.held(lambda: deps.knowledge.claim_offer(channel, thread_ts)):
        return  # another reply (or replica) offers it
    message = render.save_offer_message(channel, thread_ts)
    try:
        ts = deps.client.chat_postMessage(
            channel=channel, thread_ts=thread_ts, text=message.text, blocks=message.blocks
        )["ts"]
    except SlackApiError as exc:
        deps.knowledge.set_offer(channel, thread_ts, None)
        log.warning("chat.postMessage failed (%s): no save offer in %s", exc.response.get("error"), channel)
        return
    deps.knowledge.set_offer(channel, thread_ts, str(ts))


# --- escalation --------------------------------------------------------------------------------------


def escalate(deps: KnowledgeDeps, body: dict[str, Any]) -> None:
    """Calls the scope's experts into the answer's thread, once per thread, and thanks the asker."""
    answer_id = int_or_none(_action(body).get("value"))
    asked = deps.questions.question_for_answer(answer_id) if answer_id is not None else None
    if asked is None or asked.channel.startswith("D"):
        log.warning("escalation of an unknown answer %r ignored", answer_id)
        return
    experts = deps.policy.options_for(asked.channel, False).experts
    if experts is None:
        _tell(deps, body, render.NO_EXPERTS)
        return
    asker = deps.knowledge.question_user(asked.question_id) or body["user"]["id"]
    if not deps.knowledge.escalate(asked.channel, asked.thread_ts, asked.question_id, asker, experts):
        _tell(deps, body, render.ALREADY_ESCALATED)
        return
    message = render.escalation_message(experts, asked.text)
    try:
        deps.client.chat_postMessage(
            channel=asked.channel, thread_ts=asked.thread_ts, text=message.text, blocks=message.blocks
        )
    except Exception:
        deps.knowledge.unescalate(asked.channel, asked.thread_ts)  # not posted: a second click tries again
        raise
    log.info("thread %s in %s escalated to its experts", asked.thread_ts, asked.channel)
    _tell(deps, body, render.ESCALATED_THANKS)


# --- saving an expert's reply ------------------------------------------------------------------------


def _expert_replies(deps: KnowledgeDeps, esc: Escalation) -> list[dict[str, Any]]:
    """The people's replies in the thread after the experts were called in, but the asker's, oldest
    first (Slack's ts order, not the clocks: the escalation post is the mark)."""
    resp = deps.client.conversations_replies(channel=esc.channel, ts=esc.thread_ts, limit=REPLIES_LIMIT)
    messages = resp.get("messages") or []
    marks = [i for i, m in enumerate(messages) if m.get("bot_id") and m.get("text") == render.ESCALATION_TEXT]
    after = messages[marks[0] + 1 :] if marks else []
    return [m for m in after if m.get("user") and not m.get("bot_id") and m.get("user") != esc.asker]


def open_save(deps: KnowledgeDeps, body: dict[str, Any]) -> None:
    """Opens the save modal for an expert who replied in the thread, or an admin."""
    channel, _, thread_ts = str(_action(body).get("value") or "").partition(" ")
    esc = deps.knowledge.escalation(channel, thread_ts)
    user = body["user"]["id"]
    if esc is None or deps.learned is None:
        return
    if not _may_keep(deps, channel):
        _tell(deps, body, render.PRIVATE_CHANNEL)
        return
    replies = _expert_replies(deps, esc)
    if user not in deps.admins and user not in {m["user"] for m in replies}:
        _tell(deps, body, render.NOT_AN_EXPERT)
        return
    if not replies:
        _tell(deps, body, render.NOTHING_TO_SAVE)
        return
    reply = next((m for m in reversed(replies) if m["user"] == user), replies[-1])
    asked = deps.knowledge.question_text(esc.question_id) if esc.question_id is not None else None
    modal = render.save_modal(channel, thread_ts, reply["user"], asked or "", plain_text(reply.get("text") or "", None))
    deps.client.views_open(trigger_id=body["trigger_id"], view=modal)


def _may_keep(deps: KnowledgeDeps, channel: str) -> bool:
    """A learned answer is kept from a public channel, or one the channel scopes file lists (the admin
    said who shares its scope); never from a private channel nobody listed."""
    return channel in deps.policy.scopes.channels or deps.knowledge.channel_type(channel) == "channel"


def save(deps: KnowledgeDeps, saver: str, meta: dict[str, Any], question: str, answer: str) -> None:
    """The save modal's answer, for a thread that was escalated."""
    channel, thread_ts, author = str(meta.get("channel")), str(meta.get("thread_ts")), str(meta.get("author"))
    esc = deps.knowledge.escalation(channel, thread_ts)
    if esc is None or deps.learned is None or not _may_keep(deps, channel):
        log.warning("a learned answer for a thread that was not escalated was not saved")
        return
    keep(deps, saver, channel, thread_ts, author, question, answer)


def keep(
    deps: KnowledgeDeps, saver: str, channel: str, thread_ts: str, author: str, question: str, answer: str
) -> None:
    """Saves `author`'s answer from the thread as a learned answer, scoped to the channel's scope (store,
    mirror, index: cited from the next question on), and says so in the thread with a remove button.
    The caller has checked that the thread may be kept."""
    if deps.learned is None:  # no learned root: saving is off
        return
    new = NewLearned(
        question=question[:300],
        answer=answer[:6000],
        author=author,
        author_name=_name(deps, author),
        saved_by=saver,
        channel=channel,
        thread_ts=thread_ts,
        permalink=_permalink(deps, channel, thread_ts),
        scope=deps.policy.learned_key(channel),
        expires=deps.learned.expires(time.time()),
    )
    saved = deps.learned.save(new)
    message = render.saved_message(saved.id, saved.question, saved.author_name)
    ts = deps.client.chat_postMessage(channel=channel, thread_ts=thread_ts, text=message.text, blocks=message.blocks)
    deps.knowledge.set_learned_message(saved.id, str(ts["ts"]))


def _name(deps: KnowledgeDeps, user: str) -> str:
    """The name a citation shows (never a mention): the display name, else the real name."""
    try:
        profile = deps.client.users_info(user=user)["user"]
    except SlackApiError as exc:
        log.info("users.info failed (%s); the learned answer names no one", exc.response.get("error"))
        return "an expert"
    names = (profile.get("profile") or {}).get("display_name"), profile.get("real_name"), profile.get("name")
    return plain_text(next((n for n in names if n), "an expert"), None)[:80]


def _permalink(deps: KnowledgeDeps, channel: str, thread_ts: str) -> str | None:
    try:
        return str(deps.client.chat_getPermalink(channel=channel, message_ts=thread_ts)["permalink"])
    except SlackApiError as exc:
        log.info("chat.getPermalink failed (%s); the learned answer links nowhere", exc.response.get("error"))
        return None


def remove(deps: KnowledgeDeps, body: dict[str, Any]) -> None:
    """The saved notice's button: its author, whoever saved it, or an admin takes it out of the answers."""
    learned_id = int_or_none(_action(body).get("value"))
    found = deps.knowledge.learned(learned_id) if learned_id is not None else None
    user = body["user"]["id"]
    if found is None or deps.learned is None:
        return
    if user not in (found.author, found.saved_by) and user not in deps.admins:
        _tell(deps, body, "Only who answered, who saved it, or a qwenbot admin can remove a saved answer.")
        return
    deps.learned.remove(found.id)
    message = render.removed_message(found.id)
    channel, _ = _where(body)
    ts = (body.get("message") or {}).get("ts")
    if channel and ts:
        deps.client.chat_update(channel=channel, ts=ts, text=message.text, blocks=message.blocks)


def register_private(app: App, private: PrivateAnswers, workers: Workers) -> AskPrivately:
    """The "Share in channel" button; returns what `/qwenbot ask` calls (it answers on the answer pool)."""

    @app.action(render.ACTION_SHARE)
    def on_share(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()
        private.share(body, respond)

    def ask_privately(command: dict[str, Any], question: str, respond: Respond) -> None:
        if not workers.offer(logged(private.ask), command, question, respond):
            respond(text=BUSY, response_type="ephemeral")

    return ask_privately

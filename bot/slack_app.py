"""The Bolt app: which Slack events become questions, and how each is answered in its thread.

Slack must get an ack within 3 s, so listeners run off the request thread (Bolt acks events itself
before the listener runs, with process_before_response=False); this works the same over HTTP and
Socket Mode. Each question is answered once: deliveries are deduplicated by event id, and by message,
in SQLite (Slack retries, and a mention in a watched thread also arrives as a plain message event).
"""

from __future__ import annotations

import logging
import re
import secrets
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from slack_bolt import Ack, App, BoltContext, Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

from bot import mrkdwn, render
from bot.policy import Policy
from bot.records import Delta, Done, PipelineEvent, Scope, Status, Turn
from bot.settings import Settings
from bot.state import State
from bot.streaming import ThreadReply

log = logging.getLogger(__name__)

SLASH_COMMAND = "/qwenbot"
HISTORY_TURNS = 10  # earlier messages of a thread given to the pipeline as context
WORKERS = 16  # questions answered at once; more wait their turn (each was acked already)


class Pipeline(Protocol):
    def run(self, question: str, history: list[Turn], scope: Scope | None = None) -> Iterator[PipelineEvent]: ...


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


def make_client(settings: Settings) -> WebClient:
    """The Web API client: base URL from settings (GovSlack, proxies, the tests' fake) and 429s retried
    after Retry-After (slack_sdk does not do that by default)."""
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    base_url = settings.slack_api_url.rstrip("/") + "/"  # slack_sdk appends the method name as is
    client = WebClient(token=token, base_url=base_url, timeout=15)
    client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=3))
    return client


def build_app(
    settings: Settings,
    pipeline: Pipeline,
    state: State,
    client: WebClient | None = None,
    *,
    policy: Policy | None = None,
    status_report: Callable[[], str] | None = None,
) -> App:
    client = client or make_client(settings)
    policy = policy or Policy.from_settings(settings)
    # Socket Mode has no signatures to check. Without a signing secret, a random one: no HTTP request
    # can then be signed, so all are refused (never an empty key anyone could sign with).
    secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret \
        else secrets.token_hex(32)
    app = App(
        client=client,
        signing_secret=secret,
        process_before_response=False,
        listener_executor=ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="qwenbot-answer"),
        logger=logging.getLogger("bot.bolt"),
    )
    answerer = _Answerer(settings, pipeline, state, client, policy)

    @app.event("app_mention")
    def on_mention(body: dict[str, Any], event: dict[str, Any], context: BoltContext) -> None:
        question = answerer.question_from(body, event, context, mentioned=True)
        if question is not None:
            answerer.handle(question, mentioned=True)

    @app.event("message")
    def on_message(body: dict[str, Any], event: dict[str, Any], context: BoltContext) -> None:
        question = answerer.question_from(body, event, context, mentioned=False)
        if question is not None:
            answerer.handle(question, mentioned=False)

    @app.action(render.ACTION_UP)
    def on_thumbs_up(ack: Ack, body: dict[str, Any]) -> None:
        ack()
        answer_id = answerer.feedback(body, "up")
        if answer_id is not None:
            _thank(client, body)

    @app.action(render.ACTION_DOWN)
    def on_thumbs_down(ack: Ack, body: dict[str, Any]) -> None:
        ack()
        answer_id = answerer.feedback(body, "down")
        if answer_id is not None:
            client.views_open(trigger_id=body["trigger_id"], view=render.feedback_modal(answer_id))

    @app.view(render.FEEDBACK_VIEW)
    def on_reason(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        ack()
        answer_id = _int(view.get("private_metadata"))
        value = view.get("state", {}).get("values", {}).get(render.REASON_BLOCK, {}).get(render.REASON_ACTION, {})
        reason = (value.get("value") or "").strip()
        if answer_id is not None and reason and state.answer_exists(answer_id):
            state.record_reason(answer_id, body["user"]["id"], reason[:2000])

    @app.command(SLASH_COMMAND)
    def on_command(ack: Ack, command: dict[str, Any], respond: Respond) -> None:
        words = (command.get("text") or "").split()
        if not words or words[0].lower() != "status":
            ack(text=render.HELP, response_type="ephemeral")
            return
        ack()  # the status checks can take a few seconds: answer through the response_url
        try:
            text = status_report() if status_report else "Status is not available."
        except Exception:
            error_id = _error_id()
            log.exception("status report failed (error id %s)", error_id)
            text = render.apology(error_id)
        respond(text=text, response_type="ephemeral")

    @app.error
    def on_error(error: Exception, body: dict[str, Any]) -> None:
        log.error("unhandled error in a Slack listener (%s: %s)", type(error).__name__, error)

    return app


class _Answerer:
    def __init__(self, settings: Settings, pipeline: Pipeline, state: State, client: WebClient,
                 policy: Policy) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.state = state
        self.client = client
        self.policy = policy
        self._me: dict[str, Any] | None = None

    # --- which messages are questions ---
    def question_from(self, body: dict[str, Any], event: dict[str, Any], context: BoltContext,
                      *, mentioned: bool) -> Question | None:
        subtype = event.get("subtype")
        if subtype not in (None, "thread_broadcast", "file_share"):
            return None  # edits, deletions, joins, the bot's own posts...
        bot_user = context.bot_user_id
        if event.get("user") == bot_user or (event.get("bot_id") and event.get("bot_id") == context.bot_id):
            return None
        if (event.get("bot_id") or subtype == "bot_message") and not self.settings.answer_other_bots:
            return None
        channel = event.get("channel", "")
        is_dm = event.get("channel_type") == "im" or channel.startswith("D")
        ts = event.get("ts", "")
        thread_ts = event.get("thread_ts") or ts
        text = event.get("text") or ""
        if not mentioned and not is_dm:
            if bot_user and f"<@{bot_user}>" in text:
                return None  # the app_mention event for this message answers it
            if not self.settings.follow_up_without_mention or thread_ts == ts:
                return None
            if not self.state.answered_thread(channel, thread_ts):
                return None
        if not channel or not ts or not event.get("user"):
            return None
        return Question(event_id=body.get("event_id"), channel=channel, is_dm=is_dm, user=event["user"],
                        team=body.get("team_id") or event.get("team"),
                        text=_plain_question(text, bot_user), ts=ts, thread_ts=thread_ts)

    # --- answering ---
    def handle(self, q: Question, *, mentioned: bool) -> None:
        if q.event_id and not self.state.claim(f"event:{q.event_id}"):
            log.info("event %s already handled (a retry)", q.event_id)
            return
        if not self.state.claim(f"message:{q.channel}:{q.ts}"):
            return
        if not self.policy.channel_allowed(q.channel, q.is_dm):
            if mentioned:
                self._notice(q, render.not_enabled())
            return
        wait = self.policy.wait_seconds(q.user)
        if wait:
            self._notice(q, render.rate_limited(wait))
            return
        if not q.text:
            self._notice(q, render.HELP)
            return
        self.answer(q)

    def answer(self, q: Question) -> None:
        reply = ThreadReply(self.client, q.channel, q.thread_ts, q.ts, user=q.user, team=q.team)
        try:
            reply.status(render.status_line(Status("searching")))
            history = self.history(q) if q.thread_ts != q.ts else []
            question_id = self.state.add_question(event_id=q.event_id, channel=q.channel, thread_ts=q.thread_ts,
                                                  message_ts=q.ts, user=q.user, text=q.text)
            answer = None
            scope = self.policy.scope_for(q.channel, q.is_dm)
            for event in self.pipeline.run(q.text, history, scope):
                if isinstance(event, Status):
                    reply.status(render.status_line(event))
                elif isinstance(event, Delta):
                    reply.append(event.text)
                elif isinstance(event, Done):
                    answer = event.answer
            if answer is None:
                raise RuntimeError("the answer pipeline ended without an answer")
            if answer.model_error:
                log.warning("answered without the model in %s: %s", q.channel, answer.model_error)
            answer_id = self.state.add_answer(question_id, answer)
            ts = reply.finish(render.answer_messages(answer, answer_id, self.settings.stale_source_days))
            self.state.set_answer_message(answer_id, ts)
        except Exception:
            error_id = _error_id()
            log.exception("error %s while answering in %s (thread %s)", error_id, q.channel, q.thread_ts)
            try:
                reply.say(render.apology(error_id))
            except Exception:
                log.exception("could not post the apology for error %s", error_id)

    def history(self, q: Question) -> list[Turn]:
        """Earlier messages of the thread, oldest first, as conversation turns."""
        try:
            resp = self.client.conversations_replies(channel=q.channel, ts=q.thread_ts, limit=100)
        except SlackApiError as exc:
            log.warning("conversations.replies failed (%s): answering without the thread's history",
                        exc.response.get("error"))
            return []
        auth = self._auth()
        turns: list[Turn] = []
        for message in resp.get("messages", []):
            if message.get("ts") == q.ts:
                continue
            mine = message.get("user") == auth.get("user_id") or (
                message.get("bot_id") is not None and message.get("bot_id") == auth.get("bot_id"))
            text = _plain_question(message.get("text") or "", auth.get("user_id"))
            if text:
                turns.append(Turn(role="assistant" if mine else "user", text=text))
        return turns[-HISTORY_TURNS:]

    def _auth(self) -> dict[str, Any]:
        """Who the bot is (user and bot ids), asked once."""
        if self._me is None:
            self._me = dict(self.client.auth_test().data)  # type: ignore[arg-type]
        return self._me

    def _notice(self, q: Question, text: str) -> None:
        """A message only the asker sees, in the thread they asked in."""
        try:
            self.client.chat_postEphemeral(channel=q.channel, user=q.user, text=text,
                                           thread_ts=q.thread_ts if q.thread_ts != q.ts else None)
        except SlackApiError as exc:
            log.warning("chat.postEphemeral failed: %s", exc.response.get("error"))

    # --- feedback ---
    def feedback(self, body: dict[str, Any], rating: str) -> int | None:
        action = (body.get("actions") or [{}])[0]
        answer_id = _int(action.get("value"))
        if answer_id is None or not self.state.answer_exists(answer_id):
            log.warning("feedback for an unknown answer %r ignored", action.get("value"))
            return None
        self.state.record_feedback(answer_id, body["user"]["id"], rating)
        return answer_id


def _thank(client: WebClient, body: dict[str, Any]) -> None:
    channel = (body.get("channel") or {}).get("id")
    message = body.get("message") or {}
    if not channel:
        return
    try:
        client.chat_postEphemeral(channel=channel, user=body["user"]["id"], text="Thanks for the feedback!",
                                  thread_ts=message.get("thread_ts"))
    except SlackApiError as exc:
        log.warning("chat.postEphemeral failed: %s", exc.response.get("error"))


def _plain_question(text: str, bot_user: str | None) -> str:
    """Slack message text as plain words: the bot's own mention dropped, markup made inert."""
    if bot_user:
        text = re.sub(rf"<@{re.escape(bot_user)}(?:\|[^>]*)?>", " ", text)
    return mrkdwn.unescape(mrkdwn.neutralize(text)).strip()


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _error_id() -> str:
    return uuid.uuid4().hex[:8]

"""A fake Slack over real HTTP (Web API, response_url) and a real websocket (Socket Mode), for tests.

The Web API part keeps channels and threads like Slack does, answers with realistic `ts` / `channel`
values, checks the bot token, enforces the message limits the bot must respect (markdown 12,000
characters per message, section text 3,000, 50 blocks, text 40,000), and records every call with its
arguments. Errors, 429 + Retry-After, and refusing the streaming or status methods are scriptable.

    with FakeSlack() as slack:
        ts = slack.add_message("C0GENERAL", "U0ALICE", "<@U0BOT> how many vacation days?")
        post_event(app_url, mention_body(...), SIGNING_SECRET)
        slack.wait_for(lambda s: s.calls_to("chat.stopStream"))
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from websockets.sync.server import ServerConnection, serve

from support.http_fakes import FakeHandler, FakeServer

BOT_TOKEN = "xoxb-test-bot-token"
APP_TOKEN = "xapp-test-app-token"
SIGNING_SECRET = "test-signing-secret"
TEAM = "T0TEAM"
BOT_USER = "U0BOT"
BOT_ID = "B0BOT"
APP_ID = "A0APP"

STREAM_METHODS = ("chat.startStream", "chat.appendStream", "chat.stopStream")
# Streaming chunks as Slack documents them (chat.startStream / appendStream / stopStream `chunks`)
CHUNK_FIELDS = {
    "markdown_text": ({"type", "text"}, set()),
    "task_update": ({"type", "id", "title", "status"}, {"details", "output", "sources"}),
    "plan_update": ({"type", "title"}, set()),
    "blocks": ({"type", "blocks"}, set()),
}
TASK_STATUSES = ("pending", "in_progress", "complete", "error")


@dataclass
class Call:
    method: str
    args: dict[str, Any]
    token: str | None
    at: float  # time.monotonic() when it arrived
    ok: bool = True
    error: str | None = None


@dataclass
class _Failure:
    error: str
    status: int
    retry_after: float | None
    times: int


@dataclass
class Message:
    channel: str
    ts: str
    user: str
    text: str
    thread_ts: str | None = None
    bot_id: str | None = None
    blocks: list[dict[str, Any]] = field(default_factory=list)
    streaming: bool = False
    reactions: list[str] = field(default_factory=list)
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)  # task_update chunks: the latest per id

    def as_api(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "message", "ts": self.ts, "user": self.user, "text": self.text}
        if self.thread_ts:
            out["thread_ts"] = self.thread_ts
        if self.bot_id:
            out["bot_id"] = self.bot_id
        if self.blocks:
            out["blocks"] = self.blocks
        return out


class FakeSlack(FakeServer):
    def __init__(
        self, *, refuse_streaming: bool = False, refuse_status: bool = False, refuse_task_chunks: bool = False
    ) -> None:
        self.refuse_streaming = refuse_streaming
        self.refuse_status = refuse_status
        self.refuse_task_chunks = refuse_task_chunks  # a workspace without task steps: streaming works, tasks don't
        self.calls: list[Call] = []
        self.messages: dict[tuple[str, str], Message] = {}
        self.names: dict[str, str] = {}  # user id -> display name, for users.info
        self.ws_url: str | None = None
        self._failures: dict[str, list[_Failure]] = {}
        self._seq = itertools.count(1)
        self._epoch = int(time.time())
        self._cond = threading.Condition()
        super().__init__(_Handler, "fake-slack")

    # --- lifecycle ---
    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        """The Web API base URL (what QWENBOT_SLACK_API_URL would be)."""
        return f"{self.base}/api/"

    def response_url(self, name: str) -> str:
        return f"{self.base}/respond/{name}"

    # --- scripting ---
    def fail(
        self,
        method: str,
        error: str = "ratelimited",
        *,
        status: int = 200,
        retry_after: float | None = None,
        times: int = 1,
    ) -> None:
        """The next `times` calls to `method` fail (status 429 sends Retry-After when given)."""
        with self._cond:
            self._failures.setdefault(method, []).append(_Failure(error, status, retry_after, times))

    def next_ts(self) -> str:
        return f"{self._epoch}.{next(self._seq):06d}"

    def add_message(
        self, channel: str, user: str, text: str, *, thread_ts: str | None = None, bot_id: str | None = None
    ) -> str:
        """A message someone posted (as the events about it would describe). Returns its ts."""
        with self._cond:
            ts = self.next_ts()
            self.messages[(channel, ts)] = Message(channel, ts, user, text, thread_ts, bot_id)
            return ts

    # --- inspection ---
    def calls_to(self, method: str, *, ok_only: bool = True) -> list[Call]:
        with self._cond:
            return [c for c in self.calls if c.method == method and (c.ok or not ok_only)]

    def methods(self) -> list[str]:
        with self._cond:
            return [c.method for c in self.calls]

    def bot_messages(self, channel: str | None = None, thread_ts: str | None = None) -> list[Message]:
        with self._cond:
            found = [
                m
                for m in self.messages.values()
                if m.user == BOT_USER
                and (channel is None or m.channel == channel)
                and (thread_ts is None or m.thread_ts == thread_ts)
            ]
        return sorted(found, key=lambda m: m.ts)

    def wait_for(self, predicate: Callable[[FakeSlack], Any], timeout: float = 30.0) -> Any:
        """Wait until `predicate(self)` is truthy (re-checked on every call); returns its value."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                value = predicate(self)
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out; calls so far: {[c.method for c in self.calls]}")
                self._cond.wait(min(left, 0.2))

    # --- the Web API ---
    def handle(self, method: str, args: dict[str, Any], token: str | None) -> tuple[int, dict[str, Any], dict]:
        """Returns (HTTP status, JSON body, extra headers)."""
        with self._cond:
            call = Call(method, args, token, time.monotonic())
            self.calls.append(call)
            status, body, headers = self._dispatch(method, args, token)
            call.ok = bool(body.get("ok"))
            call.error = body.get("error")
            self._cond.notify_all()
            return status, body, headers

    def _dispatch(self, method: str, args: dict[str, Any], token: str | None) -> tuple[int, dict, dict]:
        if method == "response_url":
            return 200, {"ok": True}, {}
        failures = self._failures.get(method)
        if failures:
            failure = failures[0]
            failure.times -= 1
            if failure.times <= 0:
                failures.pop(0)
            headers = {"Retry-After": str(failure.retry_after)} if failure.retry_after is not None else {}
            return failure.status, {"ok": False, "error": failure.error}, headers
        if method == "apps.connections.open":
            if token != APP_TOKEN:  # as Slack: a revoked app token is invalid_auth, a bot token the wrong type
                error = "invalid_auth" if (token or "").startswith("xapp-") else "not_allowed_token_type"
                return 200, {"ok": False, "error": error}, {}
            return 200, {"ok": True, "url": self.ws_url}, {}
        if token != BOT_TOKEN:
            return 200, {"ok": False, "error": "invalid_auth"}, {}
        if method in STREAM_METHODS and self.refuse_streaming:
            return 200, {"ok": False, "error": "method_not_supported_for_channel_type"}, {}
        handler = getattr(self, "_api_" + method.replace(".", "_"), None)
        if handler is None:
            return 200, {"ok": False, "error": "unknown_method"}, {}
        return 200, handler(args), {}

    def _api_auth_test(self, args: dict) -> dict:
        return {
            "ok": True,
            "url": "https://fake.slack.com/",
            "team": "Fake",
            "user": "qwenbot",
            "team_id": TEAM,
            "user_id": BOT_USER,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _post(self, args: dict, text: str, blocks: list, streaming: bool = False) -> dict:
        channel = args.get("channel")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        if not text and not blocks and not streaming:
            return {"ok": False, "error": "no_text"}
        problem = _check_limits(text, blocks)
        if problem:
            return {"ok": False, "error": problem}
        thread_ts = args.get("thread_ts") or None
        if thread_ts and (channel, thread_ts) not in self.messages:
            return {"ok": False, "error": "thread_not_found"}
        ts = self.next_ts()
        message = Message(channel, ts, BOT_USER, text, thread_ts, BOT_ID, blocks, streaming)
        self.messages[(channel, ts)] = message
        return {"ok": True, "channel": channel, "ts": ts, "message": message.as_api()}

    def _api_chat_postMessage(self, args: dict) -> dict:
        return self._post(args, args.get("text") or "", _blocks(args))

    def _api_chat_postEphemeral(self, args: dict) -> dict:
        if not args.get("user") or not args.get("channel"):
            return {"ok": False, "error": "user_not_in_channel"}
        return {"ok": True, "message_ts": self.next_ts()}

    def _api_chat_update(self, args: dict) -> dict:
        message = self.messages.get(_key(args, "ts"))
        if message is None or message.user != BOT_USER:
            return {"ok": False, "error": "message_not_found" if message is None else "cant_update_message"}
        text, blocks = args.get("text") or "", _blocks(args)
        problem = _check_limits(text, blocks)
        if problem:
            return {"ok": False, "error": problem}
        message.text, message.blocks = text, blocks
        return {"ok": True, "channel": message.channel, "ts": message.ts, "text": text}

    def _chunks(self, args: dict, message: Message) -> dict | None:
        """Applies `chunks` to a streaming message: markdown text appended, task updates kept by id.
        An error response for chunks Slack would refuse (unknown types or fields, a bad status)."""
        chunks = args.get("chunks")
        if chunks is None:
            return None
        chunks = json.loads(chunks) if isinstance(chunks, str) else chunks
        if not isinstance(chunks, list) or not chunks:
            return {"ok": False, "error": "invalid_chunks"}
        for chunk in chunks:
            required, optional = CHUNK_FIELDS.get(chunk.get("type"), (None, set()))
            if required is None or not required <= set(chunk) or set(chunk) - required - optional:
                return {"ok": False, "error": "invalid_chunks"}
            if chunk["type"] == "task_update":
                if self.refuse_task_chunks:
                    return {"ok": False, "error": "invalid_chunks"}
                if chunk["status"] not in TASK_STATUSES or not all(
                    set(s) == {"type", "url", "text"} and s["type"] == "url" for s in chunk.get("sources", [])
                ):
                    return {"ok": False, "error": "invalid_chunks"}
        for chunk in chunks:
            if chunk["type"] == "markdown_text":
                message.text += chunk["text"]
            elif chunk["type"] == "task_update":
                message.tasks[chunk["id"]] = chunk
        return None

    def _api_chat_startStream(self, args: dict) -> dict:
        if not args.get("thread_ts"):
            return {"ok": False, "error": "invalid_arguments"}
        if not args["channel"].startswith("D") and not (
            args.get("recipient_user_id") and args.get("recipient_team_id")
        ):
            return {"ok": False, "error": "missing_recipient_user_id"}
        if args.get("task_display_mode") not in (None, "timeline", "plan"):
            return {"ok": False, "error": "invalid_arguments"}
        probe = Message(args["channel"], "", BOT_USER, "")
        refused = self._chunks(args, probe)  # checked before anything is posted
        if refused:
            return refused
        if args.get("chunks") is not None and not probe.tasks and not probe.text:
            return {"ok": False, "error": "invalid_chunks"}
        result = self._post(args, (args.get("markdown_text") or "") + probe.text, [], streaming=True)
        if result.get("ok"):
            self.messages[(args["channel"], result["ts"])].tasks = probe.tasks
        return result

    def _streaming(self, args: dict) -> Message | dict:
        message = self.messages.get(_key(args, "ts"))
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        if not message.streaming:
            return {"ok": False, "error": "message_not_in_streaming_state"}
        return message

    def _appended(self, args: dict) -> Message | dict:
        """The streaming message with this call's text and chunks added, or the error answer."""
        message = self._streaming(args)
        if isinstance(message, dict):
            return message
        refused = self._chunks(args, message)
        if refused:
            return refused
        message.text += args.get("markdown_text") or ""
        return message

    def _api_chat_appendStream(self, args: dict) -> dict:
        message = self._appended(args)
        if isinstance(message, dict):
            return message
        if len(message.text) > 12_000:
            return {"ok": False, "error": "msg_too_long"}
        return {"ok": True, "channel": message.channel, "ts": message.ts}

    def _api_chat_stopStream(self, args: dict) -> dict:
        message = self._appended(args)
        if isinstance(message, dict):
            return message
        message.streaming = False
        message.blocks = [{"type": "markdown", "text": message.text}, *_blocks(args)]
        problem = _check_limits("", message.blocks)
        if problem:
            return {"ok": False, "error": problem}
        return {"ok": True, "channel": message.channel, "ts": message.ts, "message": message.as_api()}

    def _api_assistant_threads_setStatus(self, args: dict) -> dict:
        if self.refuse_status:
            return {"ok": False, "error": "not_allowed"}
        if not args.get("channel_id") or not args.get("thread_ts") or "status" not in args:
            return {"ok": False, "error": "invalid_arguments"}
        return {"ok": True}

    def _api_assistant_threads_setSuggestedPrompts(self, args: dict) -> dict:
        prompts = args.get("prompts")
        prompts = json.loads(prompts) if isinstance(prompts, str) else prompts
        if not args.get("channel_id") or not isinstance(prompts, list) or not 0 < len(prompts) <= 4:
            return {"ok": False, "error": "invalid_arguments"}
        if not all(isinstance(p, dict) and set(p) == {"title", "message"} for p in prompts):
            return {"ok": False, "error": "invalid_arguments"}
        return {"ok": True}

    def _api_assistant_threads_setTitle(self, args: dict) -> dict:
        if not args.get("channel_id") or not args.get("thread_ts") or not args.get("title"):
            return {"ok": False, "error": "invalid_arguments"}
        return {"ok": True}

    def _api_chat_getPermalink(self, args: dict) -> dict:
        if (args.get("channel"), args.get("message_ts")) not in self.messages:
            return {"ok": False, "error": "message_not_found"}
        ts = str(args["message_ts"]).replace(".", "")
        return {
            "ok": True,
            "channel": args["channel"],
            "permalink": f"https://fake.slack.com/archives/{args['channel']}/p{ts}",
        }

    def _api_reactions_add(self, args: dict) -> dict:
        message = self.messages.get(_key(args, "timestamp"))
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        if args.get("name") in message.reactions:
            return {"ok": False, "error": "already_reacted"}
        message.reactions.append(args.get("name", ""))
        return {"ok": True}

    def _api_conversations_replies(self, args: dict) -> dict:
        channel, ts = args.get("channel"), args.get("ts")
        if (channel, ts) not in self.messages:
            return {"ok": False, "error": "thread_not_found"}
        thread = [
            m
            for m in self.messages.values()
            if m.channel == channel and (m.ts == ts or m.thread_ts == ts) and not m.streaming
        ]
        # Paged as Slack pages: `limit` messages (default 1000) oldest first, then `has_more` and an
        # opaque `response_metadata.next_cursor` to pass back as `cursor`; "" on the last page.
        start = int(base64.b64decode(args["cursor"]).decode().removeprefix("offset:")) if args.get("cursor") else 0
        end = start + int(args.get("limit") or 1000)
        page = sorted(thread, key=lambda m: m.ts)[start:end]
        more = end < len(thread)
        cursor = base64.b64encode(f"offset:{end}".encode()).decode() if more else ""
        return {
            "ok": True,
            "messages": [m.as_api() for m in page],
            "has_more": more,
            "response_metadata": {"next_cursor": cursor},
        }

    def _api_users_info(self, args: dict) -> dict:
        """users.info as Slack answers it: the user's names, the display name in `profile`."""
        user = str(args.get("user") or "")
        name = self.names.get(user)
        if name is None:
            return {"ok": False, "error": "user_not_found"}
        handle = name.lower().replace(" ", ".")
        profile = {"display_name": name, "real_name": name}
        found = {"id": user, "team_id": TEAM, "name": handle, "real_name": name, "profile": profile}
        return {"ok": True, "user": found}

    def _api_views_open(self, args: dict) -> dict:
        view = args.get("view")
        view = json.loads(view) if isinstance(view, str) else view
        if not args.get("trigger_id") or not isinstance(view, dict):
            return {"ok": False, "error": "invalid_arguments"}
        return {"ok": True, "view": {"id": f"V{next(self._seq):08d}", **view}}


def _key(args: dict, ts_field: str) -> tuple[str, str]:
    """The (channel, ts) a call names, as FakeSlack.messages is keyed."""
    return str(args.get("channel") or ""), str(args.get(ts_field) or "")


def _blocks(args: dict) -> list[dict[str, Any]]:
    blocks = args.get("blocks") or []
    return json.loads(blocks) if isinstance(blocks, str) else list(blocks)


def _check_limits(text: str, blocks: list[dict[str, Any]]) -> str | None:
    """Slack's documented message limits; the error names match Slack's."""
    if len(text) > 40_000:
        return "msg_too_long"
    if len(blocks) > 50:
        return "invalid_blocks"
    markdown = 0
    for block in blocks:
        if block.get("type") == "context_actions" and not _context_actions_ok(block):
            return "invalid_blocks"
        if block.get("type") == "markdown":
            markdown += len(block.get("text", ""))
        elif block.get("type") == "section" and len(block.get("text", {}).get("text", "")) > 3_000:
            return "invalid_blocks"
    return "msg_blocks_too_long" if markdown > 12_000 else None


def _context_actions_ok(block: dict[str, Any]) -> bool:
    """A context_actions block as Slack documents it: 1-5 feedback_buttons / icon_button elements;
    feedback_buttons with a positive_button and a negative_button, each plain_text (<= 75) and a value."""
    elements = block.get("elements") or []
    if not 0 < len(elements) <= 5 or set(block) - {"type", "elements", "block_id"}:
        return False
    for element in elements:
        if element.get("type") == "icon_button":
            continue
        if element.get("type") != "feedback_buttons" or set(element) - {
            "type",
            "action_id",
            "positive_button",
            "negative_button",
        }:
            return False
        for key in ("positive_button", "negative_button"):
            button = element.get(key) or {}
            text = button.get("text") or {}
            if set(button) - {"text", "value", "accessibility_label"} or not button.get("value"):
                return False
            if text.get("type") != "plain_text" or not 0 < len(text.get("text", "")) <= 75:
                return False
    return True


class _Handler(FakeHandler[FakeSlack]):
    def _args(self) -> dict[str, Any]:
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
        raw = self.read_body()
        if not raw:
            return query
        if (self.headers.get("Content-Type") or "").startswith("application/json"):
            return {**query, **json.loads(raw)}
        return {**query, **dict(urllib.parse.parse_qsl(raw.decode()))}

    def _handle(self) -> None:
        fake = self.fake
        path = urllib.parse.urlsplit(self.path).path
        args = self._args()
        if path.startswith("/respond/"):
            fake.handle("response_url", {**args, "name": path.rsplit("/", 1)[1]}, BOT_TOKEN)
            self.send_bytes(200, b"ok", "text/plain")
            return
        if not path.startswith("/api/"):
            self.send_bytes(404, b"not found", "text/plain")
            return
        auth = self.headers.get("Authorization") or ""
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else args.get("token")
        status, body, headers = fake.handle(path.removeprefix("/api/"), args, token)
        self.send_json(status, body, headers)

    do_GET = _handle
    do_POST = _handle


# --- events, signed as Slack signs them ---------------------------------------------------------

_event_ids = itertools.count(1)


def sign(secret: str, timestamp: str, body: bytes) -> str:
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def event_body(event: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
    """An Events API `event_callback` envelope around `event`."""
    return {
        "token": "legacy-verification-token",
        "team_id": TEAM,
        "api_app_id": APP_ID,
        "event": event,
        "type": "event_callback",
        "event_id": event_id or f"Ev{next(_event_ids):010d}",
        "event_time": int(time.time()),
        "authorizations": [{"team_id": TEAM, "user_id": BOT_USER, "is_bot": True}],
    }


def mention_event(channel: str, user: str, text: str, ts: str, thread_ts: str | None = None) -> dict[str, Any]:
    event = {
        "type": "app_mention",
        "user": user,
        "text": text,
        "ts": ts,
        "channel": channel,
        "team": TEAM,
        "event_ts": ts,
    }
    if thread_ts:
        event["thread_ts"] = thread_ts
    return event


def message_event(
    channel: str,
    user: str,
    text: str,
    ts: str,
    *,
    thread_ts: str | None = None,
    channel_type: str = "channel",
    bot_id: str | None = None,
) -> dict[str, Any]:
    event = {
        "type": "message",
        "user": user,
        "text": text,
        "ts": ts,
        "channel": channel,
        "channel_type": channel_type,
        "team": TEAM,
        "event_ts": ts,
    }
    if thread_ts:
        event["thread_ts"] = thread_ts
    if bot_id:
        event["bot_id"] = bot_id
    return event


def block_action_payload(
    action_id: str,
    value: str,
    *,
    user: str,
    channel: str,
    message_ts: str,
    thread_ts: str | None,
    response_url: str,
    action_type: str = "button",
    block_id: str = "feedback",
    blocks: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A block_actions payload; `blocks`: the message's blocks, which Slack sends along."""
    return {
        "type": "block_actions",
        "team": {"id": TEAM, "domain": "fake"},
        "user": {"id": user, "team_id": TEAM},
        "api_app_id": APP_ID,
        "trigger_id": f"{int(time.time())}.1234.abcdef",
        "container": {"type": "message", "message_ts": message_ts, "channel_id": channel, "is_ephemeral": False},
        "channel": {"id": channel, "name": "general"},
        "message": {
            "type": "message",
            "ts": message_ts,
            "thread_ts": thread_ts,
            "user": BOT_USER,
            "bot_id": BOT_ID,
            **({"blocks": blocks} if blocks is not None else {}),
        },
        "response_url": response_url,
        "actions": [
            {
                "type": action_type,
                "action_id": action_id,
                "block_id": block_id,
                "value": value,
                "action_ts": str(time.time()),
            }
        ],
    }


def assistant_thread_event(
    kind: str, channel: str, thread_ts: str, user: str, viewing: str | None = None
) -> dict[str, Any]:
    """assistant_thread_started / assistant_thread_context_changed, as Slack sends them."""
    context = {"channel_id": viewing, "team_id": TEAM, "enterprise_id": None} if viewing else {}
    return {
        "type": kind,
        "assistant_thread": {"user_id": user, "context": context, "channel_id": channel, "thread_ts": thread_ts},
        "event_ts": thread_ts,
    }


def view_submission_payload(callback_id: str, private_metadata: str, values: dict, *, user: str) -> dict:
    return {
        "type": "view_submission",
        "team": {"id": TEAM, "domain": "fake"},
        "user": {"id": user, "team_id": TEAM},
        "api_app_id": APP_ID,
        "trigger_id": f"{int(time.time())}.5678.abcdef",
        "view": {
            "id": "V0001",
            "type": "modal",
            "callback_id": callback_id,
            "private_metadata": private_metadata,
            "state": {"values": values},
        },
    }


def command_form(text: str, *, user: str, channel: str, response_url: str) -> dict[str, str]:
    return {
        "token": "legacy",
        "team_id": TEAM,
        "channel_id": channel,
        "user_id": user,
        "command": "/qwenbot",
        "text": text,
        "api_app_id": APP_ID,
        "response_url": response_url,
        "trigger_id": f"{int(time.time())}.9012.abcdef",
    }


@dataclass
class Delivery:
    status: int
    body: str
    seconds: float


def post_signed(
    url: str,
    body: bytes,
    content_type: str,
    *,
    secret: str = SIGNING_SECRET,
    timestamp: int | None = None,
    retry_num: int | None = None,
    signature: str | None = None,
) -> Delivery:
    """POST `body` as Slack does: v0 HMAC-SHA256 signature over `v0:timestamp:body`."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    headers = {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": signature or sign(secret, ts, body),
    }
    if retry_num is not None:
        headers["X-Slack-Retry-Num"] = str(retry_num)
        headers["X-Slack-Retry-Reason"] = "http_timeout"
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return Delivery(resp.status, resp.read().decode(), time.monotonic() - started)
    except urllib.error.HTTPError as exc:
        return Delivery(exc.code, exc.read().decode(), time.monotonic() - started)


def post_event(url: str, body: dict[str, Any], **kwargs: Any) -> Delivery:
    return post_signed(url, json.dumps(body).encode(), "application/json", **kwargs)


def post_form(url: str, form: dict[str, str], **kwargs: Any) -> Delivery:
    return post_signed(url, urllib.parse.urlencode(form).encode(), "application/x-www-form-urlencoded", **kwargs)


def post_interaction(url: str, payload: dict[str, Any], **kwargs: Any) -> Delivery:
    return post_form(url, {"payload": json.dumps(payload)}, **kwargs)


# --- Socket Mode -------------------------------------------------------------------------------


class FakeSocketMode:
    """A websocket server as Slack runs for Socket Mode: says hello, sends envelopes, records acks.

    hello=False: accepts the websocket but never says hello (a connection that is not really up)."""

    def __init__(self, *, hello: bool = True) -> None:
        self.hello = hello
        self.acks: list[dict[str, Any]] = []
        self.connections: list[ServerConnection] = []
        self._cond = threading.Condition()
        self._server = serve(self._session, "127.0.0.1", 0)  # its serve_forever wakes at once on shutdown()
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-socket-mode", daemon=True)

    @property
    def url(self) -> str:
        port = self._server.socket.getsockname()[1]
        return f"ws://127.0.0.1:{port}/link/?ticket=fake-ticket&app_id={APP_ID}"

    def __enter__(self) -> FakeSocketMode:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._thread.join(timeout=5)

    def _session(self, ws: ServerConnection) -> None:
        if self.hello:
            ws.send(
                json.dumps(
                    {
                        "type": "hello",
                        "num_connections": 1,
                        "debug_info": {"host": "fake"},
                        "connection_info": {"app_id": APP_ID},
                    }
                )
            )
        with self._cond:
            self.connections.append(ws)
            self._cond.notify_all()
        for raw in ws:
            message = json.loads(raw)
            with self._cond:
                if "envelope_id" in message:
                    self.acks.append(message)
                self._cond.notify_all()

    def wait_connected(self, timeout: float = 10.0) -> ServerConnection:
        with self._cond:
            if not self._cond.wait_for(lambda: self.connections, timeout):
                raise AssertionError("the bot never connected over Socket Mode")
            return self.connections[-1]

    def send_event(self, body: dict[str, Any], *, envelope_id: str, retry_attempt: int = 0) -> None:
        envelope = {
            "envelope_id": envelope_id,
            "type": "events_api",
            "accepts_response_payload": False,
            "retry_attempt": retry_attempt,
            "retry_reason": "timeout" if retry_attempt else "",
            "payload": body,
        }
        self.wait_connected().send(json.dumps(envelope))

    def wait_ack(self, envelope_id: str, timeout: float = 5.0) -> dict[str, Any]:
        with self._cond:
            found = self._cond.wait_for(
                lambda: next((a for a in self.acks if a["envelope_id"] == envelope_id), None), timeout
            )
        if not found:
            raise AssertionError(f"no ack for envelope {envelope_id}")
        return found

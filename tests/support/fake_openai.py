"""A scripted OpenAI-compatible server over real HTTP, for tests.

Tests push one responder per expected chat request; each writes a real HTTP response (JSON, or SSE
over chunked transfer encoding when the request asked to stream). Every request is recorded, so tests
can assert the exact body a provider profile puts on the wire.

    with FakeOpenAI() as server:
        server.push(answer(["Hel", "lo [1]"]), error(429, retry_after=1))
        ... LLMClient(load_settings(None, llm_base_url=server.url).llm_config()) ...
        server.bodies[0]["temperature"]

Misconfigured servers, for the error messages: `FakeOpenAI(api_key="sk-right")` answers every request
without that key with `key_status` (401, or 403); `FakeOpenAI(html_status=200)` answers every request
with an HTML page, as a web UI or a reverse proxy at the wrong URL does.
"""

from __future__ import annotations

import json
import socket
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from support.http_fakes import FakeHandler, FakeServer
from support.servers import free_port

Responder = Callable[["_Handler", dict[str, Any]], None]


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any  # parsed JSON, or the raw text when it was not JSON


class FakeOpenAI(FakeServer):
    def __init__(
        self,
        models: Sequence[str] = ("Qwen/Qwen3-8B",),
        *,
        api_key: str | None = None,
        key_status: int = 401,
        html_status: int | None = None,
    ) -> None:
        self.models = list(models)
        self.api_key = api_key
        self.key_status = key_status
        self.html_status = html_status
        self.requests: list[Recorded] = []
        self._script: deque[Responder] = deque()
        self._lock = threading.Lock()
        self.stopping = threading.Event()
        super().__init__(_Handler, "fake-openai")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def bodies(self) -> list[Any]:
        """Bodies of the chat completion requests, in arrival order."""
        return [r.body for r in self.requests if r.path.endswith("/chat/completions")]

    def push(self, *responders: Responder) -> None:
        with self._lock:
            self._script.extend(responders)

    def next_responder(self) -> Responder | None:
        with self._lock:
            return self._script.popleft() if self._script else None

    def record(self, entry: Recorded) -> None:
        with self._lock:
            self.requests.append(entry)

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()  # wakes responders that are sleeping
        super().__exit__(*exc)


class _Handler(FakeHandler[FakeOpenAI]):
    # HTTP/1.1 (FakeHandler's): chunked transfer encoding for SSE, so a cut stream is detectable.
    # Unbuffered writes: a stream's headers and chunks go out as written, whatever a responder does between
    wbufsize = 0

    def _read_body(self) -> Any:
        raw = self.read_body().decode("utf-8")
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return raw

    def refused(self) -> bool:
        """Answers as a misconfigured server would (wrong key, not an API at all); True when it did."""
        fake = self.fake
        if fake.html_status is not None:
            page = b"<!doctype html><html><head><title>Welcome</title></head><body>It works!</body></html>"
            self.send_bytes(fake.html_status, page, "text/html; charset=utf-8")
            return True
        if fake.api_key is not None and self.headers.get("Authorization") != f"Bearer {fake.api_key}":
            # vLLM's --api-key answers {"error": "Unauthorized"}; OpenAI's shape is the SDK's favourite
            message = "Incorrect API key provided" if fake.key_status == 401 else "Forbidden"
            self.send_json(fake.key_status, {"error": {"message": message, "type": "auth", "code": fake.key_status}})
            return True
        return False

    def do_GET(self) -> None:
        self.fake.record(Recorded("GET", self.path, dict(self.headers), None))
        if self.refused():
            return
        if self.path.rstrip("/").endswith("/models"):
            data = [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in self.fake.models]
            self.send_json(200, {"object": "list", "data": data})
        else:
            self.send_json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})

    def do_POST(self) -> None:
        body = self._read_body()
        self.fake.record(Recorded("POST", self.path, dict(self.headers), body))
        if self.refused():
            return
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self.send_json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
            return
        responder = self.fake.next_responder()
        if responder is None:
            self.send_json(500, {"error": {"message": "fake server: no scripted response left"}})
            return
        responder(self, body if isinstance(body, dict) else {})

    # --- writing helpers used by responders ---

    def start_sse(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def sse(self, payload: Any) -> None:
        text = payload if isinstance(payload, str) else json.dumps(payload)
        self.write_chunk(f"data: {text}\n\n".encode())

    def write_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def end_chunks(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def cut(self) -> None:
        """Drop the connection mid-body: no terminating chunk."""
        self.wfile.flush()
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)


def _chunk(model: str, delta: dict[str, Any] | None, finish: str | None = None, usage: Any = None) -> dict:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    out: dict[str, Any] = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "choices": choices,
    }
    if usage is not None:
        out["usage"] = usage
    return out


def answer(
    pieces: Sequence[str] | str,
    *,
    reasoning: Sequence[str] = (),
    reasoning_field: str = "reasoning_content",
    usage: tuple[int, int] | None = (42, 7),
    usage_in_last_choice: bool = False,
    finish: str | None = "stop",
    cut_after: int | None = None,
    malformed_after: int | None = None,
    chunk_delay: float = 0.0,
) -> Responder:
    """A reply: SSE chunks (one per piece) when the request streams, else one JSON completion.

    reasoning: pieces sent first in `reasoning_field` deltas. usage: sent as a final chunk with empty
    `choices` (or inside the finishing chunk with usage_in_last_choice). cut_after / malformed_after:
    after that many content pieces, drop the connection / send an event that is not JSON.
    """
    pieces = [pieces] if isinstance(pieces, str) else list(pieces)
    usage_obj = (
        None
        if usage is None
        else {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": usage[0] + usage[1]}
    )

    def respond(h: _Handler, body: dict[str, Any]) -> None:
        model = body.get("model", "fake")
        if not body.get("stream"):
            message = {"role": "assistant", "content": "".join(pieces)}
            if reasoning:
                message[reasoning_field] = "".join(reasoning)
            h.send_json(
                200,
                {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion",
                    "created": 0,
                    "model": model,
                    "choices": [{"index": 0, "message": message, "finish_reason": finish or "stop"}],
                    "usage": usage_obj,
                },
            )
            return
        h.start_sse()
        h.sse(_chunk(model, {"role": "assistant", "content": ""}))
        for piece in reasoning:
            h.sse(_chunk(model, {reasoning_field: piece}))
        for i, piece in enumerate(pieces):
            if i == cut_after:
                h.cut()
                return
            if i == malformed_after:
                h.sse('{"id": "chatcmpl-fake", "choices": [{"delta": {"content": "x"')
                h.end_chunks()
                return
            if chunk_delay and h.fake.stopping.wait(chunk_delay):
                return
            h.sse(_chunk(model, {"content": piece}))
        if finish is not None:
            h.sse(_chunk(model, {}, finish, usage_obj if usage_in_last_choice else None))
        if usage_obj is not None and not usage_in_last_choice:
            h.sse(_chunk(model, None, usage=usage_obj))
        h.sse("[DONE]")
        h.end_chunks()

    return respond


def error(status: int, *, retry_after: str | float | None = None, message: str = "scripted error") -> Responder:
    def respond(h: _Handler, body: dict[str, Any]) -> None:
        headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
        h.send_json(status, {"error": {"message": message, "type": "fake", "code": status}}, headers)

    return respond


def slow(seconds: float, then: Responder) -> Responder:
    """Wait before answering (for read timeouts); the wait ends early when the server stops."""

    def respond(h: _Handler, body: dict[str, Any]) -> None:
        if h.fake.stopping.wait(seconds):
            return
        try:
            then(h, body)
        except OSError:  # the client gave up meanwhile
            pass

    return respond


def malformed_json() -> Responder:
    """A 200 whose body is not JSON (non-streamed), or whose first SSE event is not JSON (streamed)."""

    def respond(h: _Handler, body: dict[str, Any]) -> None:
        if body.get("stream"):
            h.start_sse()
            h.sse("{this is not json")
            h.end_chunks()
        else:
            h.send_bytes(200, b"{this is not json", "application/json")

    return respond


def closed_port_url() -> str:
    """A loopback URL where nothing listens: connections are refused."""
    return f"http://127.0.0.1:{free_port()}/v1"


def keep_alive_after(pieces: Sequence[str], ended: threading.Event, interval: float = 0.05) -> Responder:
    """Streams `pieces`, then only `: keep-alive` SSE comments (never finishing) until the client hangs
    up or the server stops; sets `ended` when this response is over on the server's side."""

    def respond(h: _Handler, body: dict[str, Any]) -> None:
        try:
            h.start_sse()
            for piece in pieces:
                h.sse(_chunk(body.get("model", "fake"), {"content": piece}))
            while not h.fake.stopping.wait(interval):
                h.write_chunk(b": keep-alive\n\n")
        except OSError:  # the client hung up: what a client that gives up must do
            pass
        finally:
            ended.set()

    return respond

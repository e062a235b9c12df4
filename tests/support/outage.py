"""A state database outage, for real: the PostgreSQL server of servers.postgres() stopped and started
again on its data and port; and a model answer that waits, half written, for the outage to begin."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from support import servers
from support.fake_openai import Responder

OUTAGE_TIMEOUT = 120.0  # generous: the pool reconnects with backoff, and the machine is busy
# an opening long enough to pass the pipeline's check for the model's "not in the docs" marker
STREAMED = ["Full-time employees get **25 days** of paid vacation per calendar year, ", "pro-rated for part-time [1]."]


def wait_for(condition: Callable[[], Any], what: str, timeout: float = OUTAGE_TIMEOUT) -> Any:
    """Polls `condition()` until it is truthy (returns it); fails naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return value


class RestartablePostgres:
    """The PostgreSQL server at `url` (started by servers.postgres()), stopped and started again."""

    def __init__(self, url: str) -> None:
        self.url = url
        with psycopg.connect(url) as conn:
            row = conn.execute("SHOW data_directory").fetchone()
        assert row is not None
        self.data = Path(row[0])
        self.user = "nobody" if os.geteuid() == 0 else None  # as servers.postgres runs it
        self.proc: subprocess.Popen[bytes] | None = None

    def stop(self) -> None:
        """A fast shutdown, as `pg_ctl stop` does: connections are cut, new ones refused."""
        pid = int((self.data / "postmaster.pid").read_text().split()[0])
        os.kill(pid, signal.SIGINT)
        wait_for(lambda: not (self.data / "postmaster.pid").exists(), "PostgreSQL to stop")
        if self.proc is not None:
            self.proc.wait()

    def start(self) -> None:
        """The same command line again (PostgreSQL keeps it in postmaster.opts)."""
        command = shlex.split((self.data / "postmaster.opts").read_text())
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, user=self.user)
        wait_for(lambda: servers._accepts(self.url), "PostgreSQL to start")

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(timeout=30)


@contextmanager
def restartable_postgres() -> Iterator[RestartablePostgres]:
    """A PostgreSQL server of its own (a test that stops it stops nobody else's)."""
    with servers.postgres() as url:
        server = RestartablePostgres(url)
        try:
            yield server
        finally:
            server.close()


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def stream_then_wait(pieces: Sequence[str], gate: threading.Event) -> Responder:
    """A streamed answer: the first piece, then the rest once `gate` is set."""

    def chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    def respond(h: Any, body: dict[str, Any]) -> None:
        model = body.get("model", "fake")
        h.start_sse()
        for i, piece in enumerate(pieces):
            if i == 1:
                gate.wait(OUTAGE_TIMEOUT)
            h.sse(chunk(model, {"content": piece}))
        h.sse(chunk(model, {}, "stop"))
        h.sse("[DONE]")
        h.end_chunks()

    return respond

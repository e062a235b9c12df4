"""Starting and stopping the real servers some tests need (Chroma, llama-cpp), on loopback ports."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import ThreadingHTTPServer
from pathlib import Path

# How often a fake's serve_forever() checks whether shutdown() was called: socketserver's default,
# 0.5 s, is paid on every fake's shutdown, so on every bot test's teardown.
POLL_INTERVAL = 0.05
# How often to check whether a starting server answers yet.
READY_POLL = 0.05


class FakeHTTPServer(ThreadingHTTPServer):
    """The fakes' HTTP server: a thread per request, and a listen backlog that holds a burst of
    simultaneous connections (socketserver's default of 5 resets some of them on a busy machine)."""

    daemon_threads = True
    request_queue_size = 128


def free_port() -> int:
    """A loopback TCP port that was free a moment ago (bound to port 0, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serve(
    command: list[str], ready_url: str, log_path: Path, timeout: float = 60.0, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Runs `command` until `ready_url` answers 200, yields the process, and always stops it."""
    with log_path.open("wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{command[0]} did not come up:\n{log_path.read_text(errors='replace')[-3000:]}")
            try:
                with urllib.request.urlopen(ready_url, timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            time.sleep(READY_POLL)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

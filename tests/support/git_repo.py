"""Real git repositories for the git source's tests, and real servers for them on loopback ports:
`git daemon` (git://, no auth) and git's smart HTTP (`git http-backend` behind a small HTTP server that
asks for Basic auth, as an https host with access tokens does)."""

from __future__ import annotations

import base64
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from support.http_fakes import FakeServer, QuietHandler
from support.servers import free_port

_ENV = {"GIT_AUTHOR_NAME": "Docs Bot", "GIT_AUTHOR_EMAIL": "docs@example.com", "GIT_COMMITTER_NAME": "Docs Bot"}


@dataclass
class Repo:
    """A working repository the test edits and commits to (branch `main`)."""

    path: Path

    @classmethod
    def create(cls, path: Path) -> Repo:
        path.mkdir(parents=True)
        repo = cls(path)
        repo.git("init", "-q", "-b", "main")
        return repo

    def git(self, *args: str, date: str = "2026-03-01T12:00:00+00:00") -> str:
        env = os.environ | _ENV | {"GIT_COMMITTER_EMAIL": "docs@example.com", "GIT_COMMITTER_DATE": date}
        env["GIT_AUTHOR_DATE"] = date
        done = subprocess.run(["git", *args], cwd=self.path, env=env, capture_output=True, text=True, check=True)
        return done.stdout.strip()

    def write(self, rel: str, content: str | bytes) -> None:
        target = self.path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content.encode() if isinstance(content, str) else content)

    def move(self, old: str, new: str) -> None:
        (self.path / new).parent.mkdir(parents=True, exist_ok=True)
        self.git("mv", old, new)

    def commit(self, message: str, date: str = "2026-03-01T12:00:00+00:00") -> str:
        """Commits every change in the work tree; returns the commit's sha."""
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message, date=date)
        return self.git("rev-parse", "HEAD")


def _wait_for(url: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while subprocess.run(["git", "ls-remote", url], capture_output=True, timeout=30).returncode != 0:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"git daemon did not serve {url}")
        time.sleep(0.05)


@contextmanager
def git_daemon(base: Path, probe: str) -> Iterator[str]:
    """`git daemon` serving every repository under `base`; yields its git:// address (probe: a
    repository under `base` to wait for)."""
    port = free_port()
    command = ["git", "daemon", "--export-all", f"--base-path={base}", "--listen=127.0.0.1", f"--port={port}"]
    proc = subprocess.Popen([*command, "--reuseaddr", str(base)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(f"git://127.0.0.1:{port}/{probe}", proc)
        yield f"git://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@dataclass
class GitHttp:
    """What the smart HTTP server saw."""

    url: str = ""
    authorizations: list[str] = field(default_factory=list)  # every Authorization header sent


def _handler(base: Path, user: str, token: str, seen: GitHttp) -> type[BaseHTTPRequestHandler]:
    expected = "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()

    class Handler(QuietHandler):
        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def _serve(self) -> None:
            auth = self.headers.get("Authorization")
            if auth is not None:
                seen.authorizations.append(auth)
            if auth != expected:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="git"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            path, _, query = self.path.partition("?")
            cgi = {
                "GIT_PROJECT_ROOT": str(base),
                "GIT_HTTP_EXPORT_ALL": "1",
                "PATH_INFO": path,
                "QUERY_STRING": query,
                "REQUEST_METHOD": self.command,
                "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                "CONTENT_LENGTH": str(len(body)),
                "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
            }
            out = subprocess.run(["git", "http-backend"], input=body, env=os.environ | cgi, capture_output=True).stdout
            head, _, payload = out.partition(b"\r\n\r\n")
            headers = [line.split(":", 1) for line in head.decode().split("\r\n") if ":" in line]
            status = next((int(v.split()[0]) for k, v in headers if k.lower() == "status"), 200)
            self.send_response(status)
            for key, value in headers:
                if key.lower() != "status":
                    self.send_header(key, value.strip())
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return Handler


@contextmanager
def git_http(base: Path, user: str, token: str) -> Iterator[GitHttp]:
    """git's smart HTTP for the repositories under `base`, on loopback, answering only requests with
    Basic auth `user`:`token` (401 otherwise); yields its base URL and the Authorization headers sent."""
    seen = GitHttp()
    with FakeServer(_handler(base, user, token, seen), "git-http") as server:
        seen.url = f"http://127.0.0.1:{server.port}"
        yield seen

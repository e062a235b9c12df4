"""Running git for the git source: no prompt ever, a time limit, the token handed over out of sight,
and each failure turned into one SourceError line saying what to fix.

The token (`token_env`) reaches git through GIT_ASKPASS: a script in the source's work folder prints
it from an environment variable set for that git process only. It is never in a URL, an argument
(visible in `ps`), a config file or a message; git's own output is scrubbed of it all the same.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from retrieval.errors import SourceAuthError, SourceError, SourceNotFoundError, SourceUnreachableError
from retrieval.sources.spec import SourceSpec

_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
TIMEOUT_SECONDS = 600.0  # a fetch of a large repository; ls-remote answers in seconds
_ASKPASS = """#!/bin/sh
# qwenbot: answers git's credential prompts from this process's environment (never stored on disk)
case "$1" in
  Username*) printf '%s\\n' "$QWENBOT_GIT_USERNAME" ;;
  *) printf '%s\\n' "$QWENBOT_GIT_PASSWORD" ;;
esac
"""
# git's advice after a failed connection: true of every failure, so no help in a one-line message
_BOILERPLATE = ("Please make sure you have the correct access rights", "and the repository exists")
_AUTH = (
    "authentication failed",
    "could not read username",
    "could not read password",
    "permission denied",
    "the requested url returned error: 401",
    "the requested url returned error: 403",
    "access denied",
)
_NOT_FOUND = (
    "repository not found",
    "does not appear to be a git repository",
    "not found",
    "no such file or directory",
    "not a git repository",
    "returned error: 404",
)


@dataclass
class Git:
    """git run for one source: `repo` is its bare clone in the work folder."""

    spec: SourceSpec
    url: str
    repo: Path
    token: str | None = None
    username: str = "x-access-token"
    commands: int = 0  # git processes started: the bench counts them
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.env = _base_env()
        if self.token is not None:
            askpass = self.repo.parent / "askpass.sh"
            askpass.parent.mkdir(parents=True, exist_ok=True)
            if not askpass.is_file() or askpass.read_text() != _ASKPASS:
                askpass.write_text(_ASKPASS)
                askpass.chmod(0o700)
            self.env |= {
                "GIT_ASKPASS": str(askpass),
                "QWENBOT_GIT_USERNAME": self.username,
                "QWENBOT_GIT_PASSWORD": self.token,
            }

    def run(self, *args: str, remote: bool = False, stdin: bytes | None = None) -> bytes:
        """`git ARGS` in the clone (or, before there is one, anywhere); its stdout. `remote`: the command
        talks to the repository's server, so its failures are the source's (auth, not found, down)."""
        done = self._exec(args, stdin)
        if done.returncode != 0:
            raise self.failure(args[0], done.stderr, remote)
        return done.stdout

    def _exec(self, args: tuple[str, ...], stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        self.commands += 1
        cwd = self.repo if self.repo.is_dir() else None
        try:
            return subprocess.run(
                ["git", *args], cwd=cwd, env=self.env, input=stdin, capture_output=True, timeout=TIMEOUT_SECONDS
            )
        except subprocess.TimeoutExpired:
            raise self._error(SourceUnreachableError, f"git {args[0]} took over {TIMEOUT_SECONDS:.0f} s") from None
        except FileNotFoundError:
            raise self.spec.error("git is not installed on this machine (the git source runs it)") from None

    def fetch(self, branch: str) -> None:
        """The branch's commits into the bare clone (made on first use), as refs/qwenbot/tip."""
        if not (self.repo / "HEAD").is_file():
            self.repo.mkdir(parents=True, exist_ok=True)
            self.run("init", "--bare", "-q", str(self.repo.absolute()))
        self.run("fetch", "--no-tags", "-q", self.url, f"+refs/heads/{branch}:refs/qwenbot/tip", remote=True)

    def has_commit(self, sha: str) -> bool:
        return bool(_SHA.fullmatch(sha)) and self._exec(("cat-file", "-e", f"{sha}^{{commit}}")).returncode == 0

    def blobs(self, shas: list[str], limit: int) -> dict[str, bytes]:
        """The blobs' bytes by sha, in one `git cat-file --batch`; those over `limit` bytes left out."""
        out = self.run("cat-file", "--batch", stdin="".join(f"{s}\n" for s in dict.fromkeys(shas)).encode())
        found: dict[str, bytes] = {}
        at = 0
        while at < len(out):
            end = out.index(b"\n", at)
            header = out[at:end].split()
            at = end + 1
            if len(header) != 3:  # "<sha> missing"
                continue
            size = int(header[2])
            if size <= limit:
                found[header[0].decode()] = out[at : at + size]
            at += size + 1
        return found

    def last_changed(self, tip: str, since: str | None, folder: str) -> dict[str, str]:
        """Each file's last commit date (ISO 8601) among the commits from `since` (excluded) to `tip`."""
        args = ["log", "-z", "--format=%x01%cI", "--name-only", "--no-renames", tip]
        out = self.run(*args, *([f"^{since}"] if since else []), "--", folder or ".")
        dates: dict[str, str] = {}
        date = ""
        for token in out.decode("utf-8", errors="surrogateescape").split("\0"):
            token = token.lstrip("\n")
            if token.startswith("\x01"):
                date = token[1:]
            elif token and date:
                dates.setdefault(token, date)  # newest first: the first date seen is the last change
        return dates

    def not_found(self, message: str) -> SourceError:
        return self._error(SourceNotFoundError, message)

    def failure(self, command: str, stderr: bytes, remote: bool) -> SourceError:
        """git's failure as one line: what went wrong and what to fix (the token scrubbed from it)."""
        text = stderr.decode("utf-8", errors="replace")
        if self.token:
            text = text.replace(self.token, "***")
        lines = [" ".join(line.split()) for line in text.splitlines() if line.strip()]
        first = next((i for i, line in enumerate(lines) if line.startswith(("fatal:", "error:"))), 0)
        said = " ".join(line for line in lines[first:] if not line.startswith(_BOILERPLATE)) or f"git {command} failed"
        said = said if len(said) <= 200 else said[:199] + "…"
        lowered = text.lower()
        if remote and any(k in lowered for k in _AUTH):
            fix = (
                f"check that {self.spec.settings.get('token_env')} (token_env) holds a token with read access"
                if self.token
                else "for https, set token_env to the variable holding a token with read access; for ssh, give "
                "the bot's user a key the server accepts"
            )
            return self._error(SourceAuthError, f"the repository refused the credentials ({said}): {fix}")
        if remote and any(k in lowered for k in _NOT_FOUND):
            return self._error(SourceNotFoundError, f"no repository found ({said}): check 'url'")
        if remote:
            return self._error(
                SourceUnreachableError, f"cannot reach the repository ({said}): check 'url' and the network"
            )
        return self._error(SourceUnreachableError, f"git {command} failed in {self.repo} ({said})")

    def _error(self, kind: type[SourceError], message: str) -> SourceError:
        return kind(f"source {self.spec.name!r} ({self.spec.kind}): {message} [url: {self.url}]")


# Variables that would point git at another repository than the clone (set when the bot runs from a git
# hook, say), or at a prompt; the admin's others (GIT_SSL_CAINFO, GIT_SSH_COMMAND, proxies) are kept.
_DROPPED = frozenset(
    {
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_INDEX_FILE",
        "GIT_OBJECT_DIRECTORY",
        "GIT_ALTERNATE_OBJECT_DIRECTORIES",
        "GIT_COMMON_DIR",
        "GIT_NAMESPACE",
        "GIT_CEILING_DIRECTORIES",
        "GIT_ASKPASS",
        "SSH_ASKPASS",
    }
)


def _base_env() -> dict[str, str]:
    """This process's environment for git, minus what could make it use another repository, wait for a
    prompt or talk in another language."""
    env = {k: v for k, v in os.environ.items() if k not in _DROPPED}
    env |= {"GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C", "GCM_INTERACTIVE": "never"}
    env.setdefault("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")  # an ssh key with a passphrase fails, never asks
    return env

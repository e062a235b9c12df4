"""Who may call the MCP server: bearer tokens (stored hashed), their scopes and rate limits.

The tokens file (QWENBOT_MCP_TOKENS_FILE) is YAML, one line per token, keyed by its name:

    hr-agent: {sha256: 9f86d0..., path_prefixes: [hr/], tags: [], rate_limit_per_minute: 30}

`sha256` is the hex digest of the token; the token itself is never stored (`qwenbot mcp token NAME`
prints a new one once, with the line to paste). A scope is written as in the channel scopes file
(`path_prefixes`, `tags`; a document passes with either; both empty: every document; bot/scopes.py), and
follows the channels' privacy rules: a source restricted by `answer_in` only when the scope names it in
`sources: [...]`, no learned answer but the default scope's. Over HTTP every request must carry
`Authorization: Bearer <token>`; without a known one the answer is 401 and one line.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from starlette.types import ASGIApp, Receive, Scope, Send

from bot.errors import ConfigError, UsageError
from bot.scopes import SCOPE_KEYS, ScopeSpec, agent_filter, parse_scope
from retrieval.models import SearchFilter
from retrieval.sources.spec import SourceSpec

TOKEN_PREFIX = "qwbmcp_"  # tells a leaked token's kind at a glance (secret scanners, logs)
HEALTH_PATH = "/healthz"  # answered without a token (load balancers, readiness): says only "ok"
CALLER_KEY = "qwenbot_mcp_caller"  # where the middleware leaves the caller in the ASGI scope's state
_KEYS = {"sha256", "rate_limit_per_minute", *SCOPE_KEYS}
_HEX64 = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class Caller:
    """Who calls a tool: a token's name and what it may see ("stdio" for the local user)."""

    name: str
    scope: SearchFilter  # its scope with the privacy rules applied (bot/scopes.py agent_filter)
    rate_limit_per_minute: int  # 0: unlimited


@dataclass(frozen=True)
class TokenEntry:
    caller: Caller
    sha256: str


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token(name: str, scope: SearchFilter) -> tuple[str, str]:
    """A new token and its line for the tokens file (the only place the token is ever shown)."""
    if not name or any(c in name for c in ":{}[],#\"' \t\n"):
        raise UsageError(f"token name {name!r}: use letters, digits, '-', '_' or '.'")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    fields = {"sha256": hash_token(token), "path_prefixes": list(scope.path_prefixes), "tags": list(scope.tags)}
    return token, f"{name}: {json.dumps(fields)}"  # JSON is YAML: one line that pastes as it is


def stdio_caller(paths: Sequence[str], tags: Sequence[str], sources: Sequence[SourceSpec]) -> Caller:
    """The local user of a stdio session, scoped by QWENBOT_MCP_SCOPE_PATHS / _TAGS (no source named)."""
    scope = ScopeSpec(SearchFilter(tuple(paths), tuple(tags)))
    return Caller("stdio", agent_filter(scope, sources, "QWENBOT_MCP_SCOPE_PATHS"), 0)


def load_tokens(path: Path | None, default_rate: int, sources: Sequence[SourceSpec]) -> list[TokenEntry]:
    """The tokens file's entries; none when no file is configured (HTTP then refuses everyone).
    `sources`: the sources file's, whose answer_in restricts them to the tokens naming them."""
    if path is None:
        return []
    where = f"QWENBOT_MCP_TOKENS_FILE ({path})"
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read it: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML: {' '.join(str(exc).split())}") from None
    if raw is None:
        return []
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected one line per token, `NAME: {{sha256: ..., path_prefixes: [...]}}`")
    return [_entry(str(name), value, f"{where}: {name}", default_rate, sources) for name, value in raw.items()]


def _entry(name: str, raw: Any, where: str, default_rate: int, sources: Sequence[SourceSpec]) -> TokenEntry:
    if not isinstance(raw, dict) or set(raw) - _KEYS:
        raise ConfigError(f"{where}: expected a mapping with keys among {', '.join(sorted(_KEYS))}")
    digest = str(raw.get("sha256") or "").strip().lower()
    if len(digest) != 64 or not set(digest) <= _HEX64:
        raise ConfigError(f"{where}.sha256: expected the token's sha256 as 64 hex digits (`qwenbot mcp token`)")
    rate = raw.get("rate_limit_per_minute", default_rate)
    if not isinstance(rate, int) or isinstance(rate, bool) or rate < 0:
        raise ConfigError(f"{where}.rate_limit_per_minute: expected a whole number >= 0, got {rate!r}")
    scope = agent_filter(parse_scope(raw, where), sources, where)
    return TokenEntry(Caller(name, scope, rate), digest)


def find_caller(entries: list[TokenEntry], token: str) -> Caller | None:
    """The token's caller, compared in constant time against every entry (no early exit)."""
    digest = hash_token(token)
    found = None
    for entry in entries:
        if hmac.compare_digest(digest, entry.sha256):
            found = entry.caller
    return found


class RateLimiter:
    """Tool calls per caller in the last minute (a sliding window, in memory: per server process)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._calls: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def wait_needed(self, caller: Caller) -> float:
        """0 and the call is counted, or the seconds until the caller may call again."""
        if caller.rate_limit_per_minute <= 0:
            return 0.0
        now = self._clock()
        with self._lock:
            calls = self._calls.setdefault(caller.name, deque())
            while calls and calls[0] <= now - 60:
                calls.popleft()
            if len(calls) >= caller.rate_limit_per_minute:
                return max(calls[0] + 60 - now, 0.001)
            calls.append(now)
            return 0.0


class BearerAuth:
    """ASGI middleware in front of the MCP app: a request without a known bearer token gets 401 and one
    line; a known one passes with its Caller in the scope's state (the tools read it there)."""

    def __init__(self, app: ASGIApp, entries: list[TokenEntry]) -> None:
        self.app = app
        self.entries = entries

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan
            await self.app(scope, receive, send)
            return
        if scope.get("path") == HEALTH_PATH:
            await _reply(send, 200, "ok", [])
            return
        header = dict(scope.get("headers") or []).get(b"authorization", b"").decode("latin-1")
        kind, _, token = header.partition(" ")
        if kind.lower() != "bearer" or not token.strip():
            await _refuse(send, "missing bearer token: send `Authorization: Bearer <token>` (`qwenbot mcp token NAME`)")
            return
        caller = find_caller(self.entries, token.strip())
        if caller is None:
            await _refuse(send, "unknown bearer token: it is not in QWENBOT_MCP_TOKENS_FILE (revoked, or mistyped)")
            return
        scope.setdefault("state", {})[CALLER_KEY] = caller
        await self.app(scope, receive, send)


async def _refuse(send: Send, line: str) -> None:
    await _reply(send, 401, line, [(b"www-authenticate", b'Bearer realm="qwenbot"')])


async def _reply(send: Send, status: int, line: str, headers: list[tuple[bytes, bytes]]) -> None:
    body = (line + "\n").encode()
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode()), *headers]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})

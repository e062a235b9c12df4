"""`qwenbot mcp` for tests, driven by the MCP SDK's own client: over stdio (the client spawns the command)
and over streamable HTTP (the command serves a port, the client sends a bearer token)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx2
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult, TextContent

from bot.mcp.auth import new_token
from retrieval.models import SearchFilter
from support.paths import CORPUS_DIR
from support.servers import free_port, serve

QWENBOT = str(Path(sys.executable).with_name("qwenbot"))
STARTUP_SECONDS = 90  # the embedding model and the index load first, on busy cores


def server_env(index_dir: Path, **settings: str) -> dict[str, str]:
    """The command's environment: this machine's without its QWENBOT_/SLACK_ settings, then these
    (names without the QWENBOT_ prefix)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QWENBOT_", "SLACK_"))}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env.update(QWENBOT_INDEX_DIR=str(index_dir), QWENBOT_DOCS_DIR=str(CORPUS_DIR))
    env.update({f"QWENBOT_{name.upper()}": value for name, value in settings.items()})
    return env


@asynccontextmanager
async def stdio_session(env: dict[str, str], cwd: Path) -> AsyncIterator[ClientSession]:
    params = StdioServerParameters(command=QWENBOT, args=["--env-file", os.devnull, "mcp"], env=env, cwd=cwd)
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


@asynccontextmanager
async def http_session(url: str, token: str | None) -> AsyncIterator[ClientSession]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=120) as client,
        streamable_http_client(url, http_client=client) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


def write_tokens(
    path: Path,
    scopes: dict[str, SearchFilter],
    rate: dict[str, int] | None = None,
    sources: dict[str, list[str]] | None = None,
) -> dict[str, str]:
    """A tokens file with one new token per name (`rate`: a rate limit, `sources`: the sources a token's
    scope names, by name); the tokens, by name."""
    tokens, lines = {}, []
    for name, scope in scopes.items():
        token, line = new_token(name, scope)
        extra: dict[str, Any] = {"rate_limit_per_minute": rate[name]} if rate and name in rate else {}
        if sources and name in sources:
            extra["sources"] = sources[name]
        if extra:
            entry = json.loads(line.split(": ", 1)[1])
            line = f"{name}: {json.dumps({**entry, **extra})}"
        tokens[name] = token
        lines.append(line)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return tokens


@contextmanager
def http_server(env: dict[str, str], log_dir: Path) -> Iterator[str]:
    """`qwenbot mcp --http` on a free port until the block ends; its /mcp URL."""
    port = free_port()
    command = [QWENBOT, "--env-file", os.devnull, "mcp", "--http", "--port", str(port)]
    with serve(command, f"http://127.0.0.1:{port}/healthz", log_dir / "mcp.log", STARTUP_SECONDS, env=env):
        yield f"http://127.0.0.1:{port}/mcp"


def result(call: CallToolResult) -> Any:
    """A successful call's structured result (a list tool's list unwrapped)."""
    assert not call.is_error, text(call)
    value = call.structured_content
    assert value is not None
    return value["result"] if set(value) == {"result"} else value


def text(call: CallToolResult) -> str:
    return " ".join(c.text for c in call.content if isinstance(c, TextContent))

"""The MCP server inside the running bot (`qwenbot run` with QWENBOT_MCP_PORT): over the bot's own
searcher, its calls counted in the bot's Prometheus registry."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from prometheus_client import generate_latest
from support.mcp import http_session, result, write_tokens
from support.servers import free_port

from bot.errors import StartupError
from bot.mcp.beside import serve_beside_bot
from bot.settings import load_settings
from retrieval.models import SearchFilter

pytestmark = pytest.mark.slow  # a bot starts (its embedding model warms up first)


def serve(bot: Any, tokens_file: Path, port: int) -> Callable[[], None]:
    settings = load_settings(None, mcp_port=port, mcp_tokens_file=tokens_file, state_db=bot.settings.state_db)
    runtime = bot.runtime
    status = (settings.sources_config(), settings.state_config())
    return serve_beside_bot(
        settings.mcp_config(), runtime.searcher, settings.answer_config(), None, runtime.metrics.registry, status
    )


def test_the_bot_serves_mcp_and_counts_the_calls(make_bot: Callable[..., Any], tmp_path: Path) -> None:
    bot = make_bot()
    tokens = write_tokens(tmp_path / "tokens.yml", {"hr": SearchFilter(("hr/",))})
    port = free_port()
    stop = serve(bot, tmp_path / "tokens.yml", port)
    try:

        async def run() -> Any:
            async with http_session(f"http://127.0.0.1:{port}/mcp", tokens["hr"]) as session:
                return await session.call_tool("search_docs", {"query": "how many vacation days do we get per year?"})

        passages = result(anyio.run(run))
    finally:
        stop()
    assert passages[0]["key"] == "hr/vacation.md" and all(p["key"].startswith("hr/") for p in passages)
    metrics = generate_latest(bot.runtime.metrics.registry).decode()
    assert 'qwenbot_mcp_calls_total{outcome="ok",tool="search_docs"} 1.0' in metrics
    assert 'qwenbot_mcp_call_seconds_count{tool="search_docs"} 1.0' in metrics


def test_a_taken_port_is_one_line(make_bot: Callable[..., Any], tmp_path: Path) -> None:
    bot = make_bot()
    write_tokens(tmp_path / "tokens.yml", {})
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(StartupError, match=r"^cannot serve MCP on 127.0.0.1:\d+: is the port taken"):
            serve(bot, tmp_path / "tokens.yml", taken.getsockname()[1])

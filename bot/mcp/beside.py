"""The MCP server inside `qwenbot run` (QWENBOT_MCP_PORT set): streamable HTTP on its own port, from a
thread, over the bot's own searcher (so a local index needs no second process), its model client, and
its Prometheus registry (the calls show in the bot's /metrics)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import suppress

import uvicorn
from prometheus_client import CollectorRegistry

from bot.config import AnswerConfig, McpConfig, SourcesConfig, StateConfig
from bot.errors import StartupError
from bot.llm.client import LLMClient
from bot.mcp.auth import load_tokens, stdio_caller
from bot.mcp.server import MCP_PATH, DocsServer, McpMetrics
from bot.mcp.status import sources_reader
from bot.mcp.tools import DocsTools, IndexAccess
from retrieval.search import Searcher
from retrieval.sources.config import load_sources
from retrieval.store import open_client, open_collection

log = logging.getLogger(__name__)

_START_SECONDS = 30.0


def serve_beside_bot(
    config: McpConfig,
    searcher: Searcher,
    answers: AnswerConfig,
    llm: LLMClient | None,
    registry: CollectorRegistry,
    status: tuple[SourcesConfig, StateConfig],
) -> Callable[[], None]:
    """Starts serving; returns the function that stops it. StartupError when the port cannot be had."""
    sources, state = status
    specs = load_sources(sources.sources_file, sources.env)
    entries = load_tokens(config.mcp_tokens_file, config.mcp_rate_limit_per_minute, specs)
    index = IndexAccess(
        searcher.config, searcher, searcher.stats, open_collection(searcher.config, client=open_client(searcher.config))
    )
    tools = DocsTools(index, answers, llm, sources_reader(specs, state))
    stdio = stdio_caller(config.mcp_scope_paths, config.mcp_scope_tags, specs)  # no stdio in a bot
    app = DocsServer(tools, stdio, McpMetrics(registry)).http_app(entries, config.mcp_host)
    server = uvicorn.Server(
        uvicorn.Config(app, host=config.mcp_host, port=config.mcp_port, log_level="warning", lifespan="on")
    )

    def run() -> None:
        with suppress(SystemExit):  # uvicorn's way of saying it cannot bind: told below as StartupError
            server.run()

    thread = threading.Thread(target=run, name="mcp-http", daemon=True)
    thread.start()
    deadline = time.monotonic() + _START_SECONDS
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise StartupError(
                f"cannot serve MCP on {config.mcp_host}:{config.mcp_port}: is the port taken? (QWENBOT_MCP_PORT)"
            )
        time.sleep(0.05)
    if not entries:
        log.warning("no MCP tokens (QWENBOT_MCP_TOKENS_FILE): every MCP request will be refused")
    log.info("serving MCP on http://%s:%d%s (%d tokens)", config.mcp_host, config.mcp_port, MCP_PATH, len(entries))

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=10)

    return stop

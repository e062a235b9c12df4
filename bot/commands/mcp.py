"""`qwenbot mcp`: the index as an MCP server, over stdio (desktop and IDE clients start it themselves) or
streamable HTTP (`--http`, shared agents with bearer tokens); `qwenbot mcp token NAME` makes a token."""

from __future__ import annotations

import argparse
import logging
import sys
import threading

import anyio

from bot import logs
from bot.errors import ConfigError, NotReadyError
from bot.llm.client import build_client
from bot.mcp.auth import load_tokens, new_token, stdio_caller
from bot.mcp.server import MCP_PATH, DocsServer, serve_http
from bot.mcp.status import sources_reader
from bot.mcp.tools import DocsTools, open_index
from bot.settings import Settings
from retrieval.models import SearchFilter
from retrieval.sources.config import load_sources
from retrieval.store import index_exists

log = logging.getLogger(__name__)


def main(settings: Settings, args: argparse.Namespace) -> int:
    config = settings.mcp_config()
    if args.mcp_command == "token":
        token, line = new_token(args.name, SearchFilter(tuple(args.path), tuple(args.tag)))
        where = config.mcp_tokens_file or "the file QWENBOT_MCP_TOKENS_FILE names"
        print(f"token for {args.name} (shown this once; the server keeps only its hash):\n{token}\n")
        print(f"add this line to {where}, then restart the MCP server:\n{line}")
        return 0
    index = settings.index_config()
    if not index_exists(index):
        raise NotReadyError(f"no index at {index.index_dir}: run `qwenbot index` first")
    port = args.port or config.mcp_port
    if args.http and not port:
        raise ConfigError("QWENBOT_MCP_PORT is 0: give `qwenbot mcp --http` a --port, or set QWENBOT_MCP_PORT")
    sources = settings.sources_config()
    specs = load_sources(sources.sources_file, sources.env)  # their answer_in says which callers see them
    entries = load_tokens(config.mcp_tokens_file, config.mcp_rate_limit_per_minute, specs) if args.http else []
    logs.configure(settings.log_level, settings.log_format)  # before the SDK's own logging setup
    stdio = stdio_caller(config.mcp_scope_paths, config.mcp_scope_tags, specs)
    with open_index(index) as opened:  # through the running bot while one holds the local index
        status = sources_reader(specs, settings.state_config())
        tools = DocsTools(opened, settings.answer_config(), build_client(settings.llm_config()), status)
        server = DocsServer(tools, stdio)
        if not args.http:  # the client waits for its handshake: the model loads meanwhile
            threading.Thread(target=tools.warm_up, name="mcp-warm-up", daemon=True).start()
            anyio.run(server.run_stdio)
            return 0
        tools.warm_up()  # ready (/healthz) means a search answers at once
        if not entries:
            log.warning("no MCP tokens (QWENBOT_MCP_TOKENS_FILE): every request will be refused")
        host = args.host or config.mcp_host
        print(f"qwenbot mcp: serving http://{host}:{port}{MCP_PATH} ({len(entries)} tokens)", file=sys.stderr)
        serve_http(server.http_app(entries, host), host, port)
    return 0

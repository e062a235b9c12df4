"""The MCP server (official `mcp` SDK, MCPServer): the tools and `doc://` resources over DocsTools, one
log line and the metrics per call, the caller's scope and rate limit; served over stdio or streamable HTTP.

Over HTTP, BearerAuth (bot/mcp/auth.py) answers every request without a known token itself and leaves
the token's Caller in the request; the tools read it there. Over stdio the caller is the local user,
with the scope QWENBOT_MCP_SCOPE_PATHS / _TAGS give.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import anyio.to_thread
import uvicorn
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceNotFoundError, ToolError
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types import ToolAnnotations
from prometheus_client import CollectorRegistry, Counter, Histogram
from pydantic import Field
from starlette.types import ASGIApp

from bot.errors import QwenbotError, StartupError, user_message
from bot.mcp.auth import CALLER_KEY, BearerAuth, Caller, RateLimiter, TokenEntry
from bot.mcp.tools import MAX_K, AnswerResult, DocsTools, DocumentText, McpToolError, Passage, SourcesInfo
from retrieval.errors import RetrievalError

log = logging.getLogger(__name__)
# The SDK's INFO lines: two per stateless request ("Terminating session"), and a tool's failure again
# after ours. The call's one line is DocsServer._call's.
_SDK_CHATTY = ("mcp.server.streamable_http", "mcp.server.mcpserver.server")

T = TypeVar("T")
MCP_PATH = "/mcp"
_READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)

INSTRUCTIONS = (
    "The team's internal documents (handbooks, policies, runbooks), searched with the same index and scopes as "
    "the team's Slack bot. Use search_docs to find passages and cite each by its title and url; say when a "
    "passage is archived (outdated). get_document reads a whole document by the key search_docs returned. "
    "answer gives the bot's own cited answer to a question."
)


# name -> (title, description): what an agent reads to choose a tool and use it well
TOOLS = {
    "search_docs": (
        "Search the team's docs",
        "Search the team's internal documents and return the best passages, best first. Each has the document "
        "key (for get_document), title, heading path, url to cite, updated date, archived flag (archived or "
        "deprecated documents may be outdated: prefer current ones, and say so when citing one) and score (fused "
        "dense+keyword; rerank_score too when a reranker is configured). Ask in plain words, as a person would. "
        "Narrow with path_prefix (a folder key such as 'hr/') or tags; you only ever see the documents your "
        "token's scope allows. An error names a filter that matches nothing.",
    ),
    "get_document": (
        "Read a document",
        "Read one whole document by its key (as search_docs returns it, e.g. 'hr/vacation.md'): its text with "
        "title, url, updated date, archived flag, tags and owner. Use it when a passage is not enough. Also "
        "readable as the resource doc://<key>.",
    ),
    "list_sources": (
        "List the indexed sources",
        "What the index holds: its roots (the docs folder is '', other roots prefix their keys with their name) "
        "with document and chunk counts and when each was last indexed, the totals, and the embedding model. Use "
        "it to pick a path_prefix, or to tell how fresh the docs are.",
    ),
    "answer": (
        "Answer from the docs",
        "Answer a question the way the team's Slack bot does: search, decide whether the docs hold the answer, "
        "then the configured model writes it with numbered citations [n] (without a model: the best passages, "
        "quoted). mode says which: generated, extractive (quoted), not_found (the docs do not cover it: do not "
        "guess), failed (the model failed). sources are the documents cited.",
    ),
}


class McpMetrics:
    """The MCP calls in a Prometheus registry: the running bot's when served inside it."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.calls = Counter(
            "qwenbot_mcp_calls", "MCP tool calls, by tool and outcome", ["tool", "outcome"], registry=registry
        )
        self.seconds = Histogram(
            "qwenbot_mcp_call_seconds",
            "Time to answer an MCP tool call",
            ["tool"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=registry,
        )


class DocsServer:
    """One MCPServer over one DocsTools; `stdio` is the caller of stdio sessions."""

    def __init__(self, tools: DocsTools, stdio: Caller, metrics: McpMetrics | None = None) -> None:
        self.tools = tools
        self.stdio = stdio
        self.metrics = metrics or McpMetrics(CollectorRegistry())
        self.limiter = RateLimiter()
        self.mcp: MCPServer[Any] = MCPServer("qwenbot", instructions=INSTRUCTIONS, log_level="WARNING")
        self._register()
        for name in _SDK_CHATTY:
            logging.getLogger(name).setLevel(logging.WARNING)

    def http_app(self, entries: list[TokenEntry], host: str) -> ASGIApp:
        """The streamable HTTP app at /mcp, every request checked for a bearer token first. Stateless and
        JSON responses: each call stands alone (no session to keep per agent, any replica may answer)."""
        # The SDK refuses a Host other than 127.0.0.1/localhost when bound there (DNS rebinding: a web page
        # calling a local server that trusts any caller). Every request here needs a bearer token instead,
        # and behind a reverse proxy the Host is the public name.
        unchecked = TransportSecuritySettings(enable_dns_rebinding_protection=False)
        app = self.mcp.streamable_http_app(
            streamable_http_path=MCP_PATH,
            stateless_http=True,
            json_response=True,
            host=host,
            transport_security=unchecked,
        )
        return BearerAuth(app, entries)

    async def run_stdio(self) -> None:
        await self.mcp.run_stdio_async()

    # --- the tools ---------------------------------------------------------------------------------

    def _register(self) -> None:
        for tool in (self.search_docs, self.get_document, self.list_sources, self.answer):
            title, description = TOOLS[tool.__name__]
            self.mcp.add_tool(tool, title=title, description=description, annotations=_READ_ONLY)
        self.mcp.resource(
            "doc://{+key}",
            name="document",
            title="A document of the team's docs",
            description="One document's text, by its key (doc://hr/vacation.md)",
            mime_type="text/markdown",
        )(self.read_document)

    # --- the tools (their descriptions: TOOLS) ----------------------------------------------------

    async def search_docs(
        self,
        query: Annotated[str, Field(min_length=1, max_length=2000, description="the question or keywords")],
        ctx: Context,
        k: Annotated[int, Field(ge=1, le=MAX_K, description="how many passages to return")] = 6,
        path_prefix: Annotated[
            str | None, Field(max_length=500, description="only documents under this key prefix, e.g. 'hr/'")
        ] = None,
        tags: Annotated[
            list[str] | None, Field(max_length=20, description="only documents with any of these front-matter tags")
        ] = None,
    ) -> list[Passage]:
        caller = self._caller(ctx)
        return await self._call(
            "search_docs", caller, len, self.tools.search, caller, query, k, path_prefix, tags or []
        )

    async def get_document(
        self, key: Annotated[str, Field(min_length=1, max_length=1000, description="the document key")], ctx: Context
    ) -> DocumentText:
        caller = self._caller(ctx)
        return await self._call("get_document", caller, lambda _: 1, self.tools.document, caller, key)

    async def list_sources(self, ctx: Context) -> SourcesInfo:
        caller = self._caller(ctx)
        return await self._call("list_sources", caller, lambda s: len(s.roots), self.tools.sources, caller)

    async def answer(
        self, question: Annotated[str, Field(min_length=1, max_length=2000, description="the question")], ctx: Context
    ) -> AnswerResult:
        caller = self._caller(ctx)
        return await self._call("answer", caller, lambda a: len(a.sources), self.tools.answer, caller, question)

    async def read_document(self, key: str, ctx: Context) -> str:
        """The doc:// resource: get_document's text as Markdown, its metadata on top."""
        caller = self._caller(ctx)
        try:
            doc = await self._call("read_document", caller, lambda _: 1, self.tools.document, caller, key)
        except ToolError as exc:
            raise ResourceNotFoundError(str(exc)) from None
        return _markdown(doc)

    def _caller(self, ctx: Context) -> Caller:
        request = ctx.request_context.request
        if request is None:  # stdio
            return self.stdio
        caller = getattr(request, "scope", {}).get("state", {}).get(CALLER_KEY)
        if not isinstance(caller, Caller):  # BearerAuth stands in front of every HTTP request
            raise ToolError("no caller: this server was reached without its bearer token check")
        return caller

    async def _call(self, tool: str, caller: Caller, count: Callable[[T], int], fn: Callable[..., T], *args: Any) -> T:
        """Runs a tool's work on a worker thread (searching is CPU work), after the caller's rate limit;
        one log line (never the query) and the metrics. An error the agent can act on becomes ToolError."""
        wait = self.limiter.wait_needed(caller)
        if wait:
            self.metrics.calls.labels(tool, "rate_limited").inc()
            log.info("mcp %s token=%s refused: rate limit", tool, caller.name)
            raise ToolError(
                f"rate limit: {caller.rate_limit_per_minute} calls a minute for token {caller.name!r}; "
                f"retry in {wait:.0f} s"
            )
        start = time.monotonic()
        outcome, results = "ok", 0
        try:
            value = await anyio.to_thread.run_sync(functools.partial(fn, *args))
            results = count(value)
            return value
        except McpToolError as exc:
            outcome = "refused"
            raise ToolError(str(exc)) from None
        except (QwenbotError, RetrievalError) as exc:
            outcome = "error"
            raise ToolError(user_message(exc)) from None
        finally:
            seconds = time.monotonic() - start
            self.metrics.calls.labels(tool, outcome).inc()
            self.metrics.seconds.labels(tool).observe(seconds)
            log.info("mcp %s token=%s %s results=%d ms=%.1f", tool, caller.name, outcome, results, seconds * 1000)


def _markdown(doc: DocumentText) -> str:
    lines = [f"# {doc.title or doc.key}", ""]
    for label, value in (("url", doc.url), ("updated", doc.updated), ("archived", "yes" if doc.archived else None)):
        if value:
            lines.append(f"{label}: {value}")
    return "\n".join(lines) + "\n\n" + doc.text + "\n"


def serve_http(app: ASGIApp, host: str, port: int) -> None:
    """Serves the MCP app until interrupted (SIGINT/SIGTERM); a taken port is one line."""
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on"))
    try:
        server.run()
    except SystemExit:  # uvicorn exits when it cannot bind
        raise StartupError(
            f"cannot serve MCP on {host}:{port} (is the port taken? QWENBOT_MCP_PORT / --port)"
        ) from None

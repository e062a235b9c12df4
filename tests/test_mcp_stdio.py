"""`qwenbot mcp` over stdio, as a desktop or IDE client runs it: the SDK's client spawns the command and
calls every tool; the stdio scope setting holds as a token's scope does over HTTP."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from support.mcp import result, server_env, stdio_session, text

pytestmark = pytest.mark.slow  # the command starts: the embedding model and the index load

VACATION = "how many vacation days do we get per year?"


def test_stdio_session_scoped_to_hr(corpus_index: Path, tmp_path: Path) -> None:
    env = server_env(corpus_index, mcp_scope_paths="hr/")

    async def run() -> dict[str, Any]:
        async with stdio_session(env, tmp_path) as session:
            return {
                "tools": [t.name for t in (await session.list_tools()).tools],
                "vacation": await session.call_tool("search_docs", {"query": VACATION, "k": 3}),
                "paging": await session.call_tool("search_docs", {"query": "paging policy on-call", "k": 20}),
                "doc": await session.call_tool("get_document", {"key": "hr/sick-leave.md"}),
                "hidden": await session.call_tool("get_document", {"key": "engineering/paging-policy.md"}),
                "sources": await session.call_tool("list_sources", {}),
                "answer": await session.call_tool("answer", {"question": VACATION}),
                "resource": await session.read_resource("doc://hr/vacation.md"),
            }

    got = anyio.run(run)
    assert sorted(got["tools"]) == ["answer", "get_document", "list_sources", "search_docs"]
    assert [p["key"] for p in result(got["vacation"])][0] == "hr/vacation.md"
    paging = result(got["paging"])
    assert paging and all(p["key"].startswith("hr/") for p in paging)  # never engineering/
    assert result(got["doc"])["title"] and "sick" in result(got["doc"])["text"].lower()
    assert got["hidden"].is_error and "unknown document key 'engineering/paging-policy.md'" in text(got["hidden"])
    assert result(got["sources"])["roots"][0]["documents"] == 14  # what hr/ holds, not the whole index
    answer = result(got["answer"])
    assert answer["mode"] == "extractive" and answer["sources"][0]["key"] == "hr/vacation.md"
    assert "25 days of paid vacation" in got["resource"].contents[0].text


def test_through_the_running_bot_that_holds_the_index(make_bot: Callable[..., Any], tmp_path: Path) -> None:
    """A bot holds the local index folder: `qwenbot mcp` searches through its control channel, and reads
    documents from their files (the index's manifest says where)."""
    bot = make_bot()
    env = server_env(bot.settings.index_dir)

    async def run() -> list[Any]:
        async with stdio_session(env, tmp_path) as session:
            return [
                await session.call_tool("search_docs", {"query": VACATION, "k": 3}),
                await session.call_tool("get_document", {"key": "hr/vacation.md"}),
                await session.call_tool("list_sources", {}),
            ]

    search, document, sources = anyio.run(run)
    assert result(search)[0]["key"] == "hr/vacation.md"
    assert "25 days of paid vacation per calendar year" in result(document)["text"]
    assert result(document)["url"] == "https://wiki.northwind.example/hr/vacation"
    assert result(sources)["documents"] == result(sources)["roots"][0]["documents"] > 40

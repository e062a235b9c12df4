"""`qwenbot mcp --http` against the SDK's streamable HTTP client: bearer tokens, their scopes and rate
limits, each tool's result checked against the corpus index, and one line for what an agent must fix."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import MCPError
from support.mcp import http_server, http_session, result, server_env, text, write_tokens

from retrieval.models import SearchFilter

pytestmark = pytest.mark.slow  # one server for the module: the embedding model and the index load first

VACATION = "how many vacation days do we get per year?"


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The server's tokens file and its log (mcp.log)."""
    return tmp_path_factory.mktemp("mcp_http")


@pytest.fixture(scope="module")
def server(corpus_index: Path, folder: Path) -> Iterator[tuple[str, dict[str, str]]]:
    scopes = {"all": SearchFilter(), "hr": SearchFilter(("hr/",)), "eng-tag": SearchFilter((), ("engineering",))}
    scopes["slow-lane"] = SearchFilter()
    tokens = write_tokens(folder / "tokens.yml", scopes, rate={"slow-lane": 2})
    env = server_env(corpus_index, mcp_tokens_file=str(folder / "tokens.yml"))
    with http_server(env, folder) as url:
        yield url, tokens


def call(url: str, token: str | None, tool: str, **arguments: Any) -> Any:
    async def run() -> Any:
        async with http_session(url, token) as session:
            return await session.call_tool(tool, arguments)

    return anyio.run(run)


def post(url: str, headers: dict[str, str]) -> tuple[int, str]:
    body = b'{"jsonrpc": "2.0", "id": 1, "method": "tools/list"}'
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream", **headers}
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_no_token_or_a_wrong_one_is_refused_with_one_line(server: tuple[str, dict[str, str]]) -> None:
    url, tokens = server
    status, body = post(url, {})
    assert status == 401
    assert body.splitlines() == [body.strip()] and "missing bearer token" in body
    status, body = post(url, {"Authorization": "Bearer " + tokens["all"][:-2] + "xx"})
    assert (status, body.strip()) == (401, body.strip()) and "unknown bearer token" in body
    assert len(body.strip().splitlines()) == 1
    with pytest.raises((MCPError, BaseExceptionGroup)) as raised:  # the SDK's client gets no session
        call(url, "qwbmcp_wrong", "list_sources")
    assert any(isinstance(e, MCPError) for e in leaves(raised.value))


def leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in leaves(inner)]
    return [error]


def test_behind_a_proxy_the_public_host_name_is_served(server: tuple[str, dict[str, str]]) -> None:
    """The token is the check: a reverse proxy's Host header (the public name) is no reason to refuse."""
    url, tokens = server
    status, body = post(url, {"Authorization": f"Bearer {tokens['all']}", "Host": "docs-mcp.example.com"})
    assert status == 200 and '"search_docs"' in body


def test_lists_the_tools_with_their_schemas(server: tuple[str, dict[str, str]]) -> None:
    url, tokens = server

    async def run() -> Any:
        async with http_session(url, tokens["all"]) as session:
            return (await session.list_tools()).tools, (await session.list_resource_templates()).resource_templates

    tools, templates = anyio.run(run)
    by_name = {t.name: t for t in tools}
    assert set(by_name) == {"search_docs", "get_document", "list_sources", "answer"}
    search = by_name["search_docs"].input_schema
    assert search["required"] == ["query"]
    assert search["properties"]["k"]["maximum"] == 20 and search["properties"]["k"]["minimum"] == 1
    assert all(t.annotations and t.annotations.read_only_hint for t in tools)
    passage = by_name["search_docs"].output_schema["$defs"]["Passage"]["properties"]  # what a result holds
    assert {"key", "title", "heading_path", "url", "updated", "archived", "score", "rerank_score"} <= set(passage)
    assert "say so when citing it" in passage["archived"]["description"]
    assert all(t.description and len(t.description) > 80 for t in tools)
    assert [t.uri_template for t in templates] == ["doc://{+key}"]


def test_search_finds_the_vacation_policy_first(server: tuple[str, dict[str, str]]) -> None:
    url, tokens = server
    passages = result(call(url, tokens["all"], "search_docs", query=VACATION, k=5))
    assert passages[0]["key"] == "hr/vacation.md"
    first = passages[0]
    assert first["title"] == "Vacation and Paid Time Off"
    assert first["url"] == "https://wiki.northwind.example/hr/vacation" and first["updated"] == "2026-02-03"
    assert first["archived"] is False and first["score"] > 0 and first["text"]
    assert len(passages) == 5


def test_a_token_scoped_to_hr_never_sees_engineering(server: tuple[str, dict[str, str]]) -> None:
    url, tokens = server
    passages = result(call(url, tokens["hr"], "search_docs", query="who is on call and how do I page them", k=20))
    assert passages and all(p["key"].startswith("hr/") for p in passages)
    refused = call(url, tokens["hr"], "search_docs", query="paging policy", path_prefix="engineering/")
    assert refused.is_error
    assert text(refused) == (
        "Error executing tool search_docs: path_prefix 'engineering/' matches no indexed document within the "
        "scope of 'hr' (path_prefixes ['hr/']): list_sources shows what is indexed"
    )
    hidden = call(url, tokens["hr"], "get_document", key="engineering/paging-policy.md")
    assert hidden.is_error and "unknown document key 'engineering/paging-policy.md'" in text(hidden)
    sources = result(call(url, tokens["hr"], "list_sources"))
    assert [r["name"] for r in sources["roots"]] == [""] and sources["roots"][0]["documents"] == 14


def test_a_narrower_filter_inside_a_tag_scope(server: tuple[str, dict[str, str]]) -> None:
    url, tokens = server
    passages = result(call(url, tokens["eng-tag"], "search_docs", query="who do I page", path_prefix="engineering/"))
    assert passages and all(p["key"].startswith("engineering/") for p in passages)
    passages = result(call(url, tokens["eng-tag"], "search_docs", query=VACATION, k=10))
    assert passages and not any(p["key"].startswith("hr/") for p in passages)


def test_get_document_and_the_doc_resource(server: tuple[str, dict[str, str]]) -> None:
    url, tokens = server
    doc = result(call(url, tokens["all"], "get_document", key="hr/vacation.md"))
    assert doc["title"] == "Vacation and Paid Time Off" and "vacation" in doc["tags"]
    assert "25 days of paid vacation per calendar year" in doc["text"]
    assert doc["text"].count("after **five years of service**".lower()) <= 1  # chunk overlaps said once
    assert doc["chunks"] >= 2

    async def read() -> Any:
        async with http_session(url, tokens["all"]) as session:
            return await session.read_resource("doc://hr/vacation.md")

    contents = anyio.run(read).contents
    assert contents[0].text.startswith("# Vacation and Paid Time Off\n")
    assert "25 days of paid vacation" in contents[0].text


def test_an_unknown_key_is_one_line(server: tuple[str, dict[str, str]]) -> None:
    url, tokens = server
    missing = call(url, tokens["all"], "get_document", key="hr/vacations.md")
    assert missing.is_error
    assert text(missing) == (
        "Error executing tool get_document: unknown document key 'hr/vacations.md': use a key search_docs "
        "returned (like 'hr/vacation.md'), exact and case-sensitive"
    )


def test_list_sources_and_the_extractive_answer(server: tuple[str, dict[str, str]]) -> None:
    url, tokens = server
    sources = result(call(url, tokens["all"], "list_sources"))
    assert sources["roots"][0]["name"] == "" and sources["roots"][0]["documents"] == sources["documents"]
    assert sources["chunks"] > sources["documents"] > 40 and sources["last_indexed"]
    answer = result(call(url, tokens["all"], "answer", question=VACATION))
    assert answer["mode"] == "extractive"  # no model configured: the passages, quoted
    assert answer["sources"][0]["key"] == "hr/vacation.md" and "25 days" in answer["text"]


def test_rate_limit_per_token(server: tuple[str, dict[str, str]]) -> None:
    url, tokens = server
    assert not call(url, tokens["slow-lane"], "list_sources").is_error
    assert not call(url, tokens["slow-lane"], "list_sources").is_error
    third = call(url, tokens["slow-lane"], "list_sources")
    assert third.is_error and text(third).startswith(
        "Error executing tool list_sources: rate limit: 2 calls a minute for token 'slow-lane'; retry in "
    )
    assert not call(url, tokens["all"], "list_sources").is_error  # the others are not slowed


def test_one_log_line_per_call_and_never_the_query(server: tuple[str, dict[str, str]], folder: Path) -> None:
    url, tokens = server
    call(url, tokens["hr"], "search_docs", query="zebra crossing allowance", k=2)
    call(url, tokens["hr"], "get_document", key="hr/zebra.md")
    lines = (folder / "mcp.log").read_text().splitlines()
    assert not any("zebra crossing" in line for line in lines)
    calls = [line.split(" INFO bot.mcp.server: ", 1)[1] for line in lines if " INFO bot.mcp.server: " in line]
    assert re.fullmatch(r"mcp search_docs token=hr ok results=2 ms=[\d.]+", calls[-2])
    assert re.fullmatch(r"mcp get_document token=hr refused results=0 ms=[\d.]+", calls[-1])
    assert not any("Terminating session" in line for line in lines)  # the SDK's own chatter stays out

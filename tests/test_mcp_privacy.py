"""MCP callers follow the Slack channels' privacy rules: a source with `answer_in` is out of every token's
scope unless the token's scope names it (`sources: [...]`), and learned answers are the default scope's
only (learned/default/): never another scope's folder. Over HTTP (tokens) and stdio, through every way
in: search_docs, get_document, the doc:// resources, answer and list_sources."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import ClientSession
from support.mcp import http_server, http_session, result, server_env, stdio_session, text, write_tokens

from retrieval.config import IndexConfig
from retrieval.indexer import Indexer
from retrieval.models import SearchFilter

pytestmark = pytest.mark.slow  # the server starts: the embedding model and the index load first

FINANCE_DOC = "finance/budget/halibut.md"  # the restricted source's (answer_in: [C0FINANCE1])
OTHER_LEARNED = "learned/s-0123456789/7-payroll-cutoff.md"  # a channel scope's learned answer
DEFAULT_LEARNED = "learned/default/3-vacation-carry-over.md"  # the default scope's
BUDGET = "What is the Project Halibut budget for next year?"
PAYROLL = "When is the payroll cutoff for the zebra run?"
SECRETS = ("finance/", "learned/s-")
SOURCES_FILE = """sources:
  - name: finance
    type: git
    url: https://git.example.com/finance/wiki.git
    answer_in: [C0FINANCE1]
"""


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> Path:
    """The index (a docs folder, the source's mirror as the root `finance`, learned answers of two scopes
    as the root `learned`, as a sync and saving answers leave them), the sources file and the tokens."""
    base = tmp_path_factory.mktemp("mcp_privacy")
    write(base / "docs/hr/vacation.md", "Vacation", "Employees get 25 vacation days per calendar year.")
    write(base / "docs/eng/deploys.md", "Deploys", "Deploys go out on Tuesdays after the budget review.")
    write(base / "finance/budget/halibut.md", "Halibut budget", "The Project Halibut budget is 4.2 million euros.")
    learned = base / "learned"
    write(learned / "s-0123456789/7-payroll-cutoff.md", "Payroll cutoff", "The zebra payroll cutoff is the 19th.")
    write(learned / "default/3-vacation-carry-over.md", "Carry-over", "Up to 5 vacation days carry over.")
    config = IndexConfig(index_dir=base / "index")
    assert Indexer(config, embedder).run([base / "docs"], progress=False).failed == 0
    indexer = Indexer(config, embedder, docs_dir=base / "docs")
    for root in ("finance", "learned"):
        assert indexer.run([base / root], progress=False, add_root=root).failed == 0
    (base / "sources.yml").write_text(SOURCES_FILE, encoding="utf-8")
    return base


def write(path: Path, title: str, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"---\ntitle: {title}\nurl: https://wiki.example/{path.stem}\n---\n\n{text}\n", encoding="utf-8")


def env(folder: Path, index: Path | None = None, **settings: str) -> dict[str, str]:
    sources = str(folder / "sources.yml")
    return server_env(index or folder / "index", docs_dir=str(folder / "docs"), sources_file=sources, **settings)


@pytest.fixture(scope="module")
def server(folder: Path) -> Iterator[tuple[str, dict[str, str]]]:
    scopes = {
        "all": SearchFilter(),
        "hr": SearchFilter(("hr/",)),
        "prefixes": SearchFilter(("finance/", "learned/")),  # a prefix takes no restricted document in
        "finance": SearchFilter(),
    }
    tokens = write_tokens(folder / "tokens.yml", scopes, sources={"finance": ["finance"]})
    with http_server(env(folder, mcp_tokens_file=str(folder / "tokens.yml")), folder) as url:
        yield url, tokens


async def everything(session: ClientSession) -> dict[str, Any]:
    """Every way a restricted document could come out, asked for it by name and by its words."""
    got: dict[str, Any] = {
        "search": [await session.call_tool("search_docs", {"query": q, "k": 20}) for q in (BUDGET, PAYROLL)],
        "narrowed": [await session.call_tool("search_docs", {"query": BUDGET, "path_prefix": p}) for p in SECRETS],
        "answer": [await session.call_tool("answer", {"question": q}) for q in (BUDGET, PAYROLL)],
        "documents": {k: await session.call_tool("get_document", {"key": k}) for k in (FINANCE_DOC, OTHER_LEARNED)},
        "unknown": await session.call_tool("get_document", {"key": "finance/nothing.md"}),
        "sources": await session.call_tool("list_sources", {}),
        "default_learned": await session.call_tool("get_document", {"key": DEFAULT_LEARNED}),
        "resources": {},
    }
    for key in (FINANCE_DOC, OTHER_LEARNED):
        try:
            got["resources"][key] = (await session.read_resource(f"doc://{key}")).contents[0]
        except Exception as exc:  # the SDK raises the server's error: that is the outcome wanted
            got["resources"][key] = exc
    return got


def assert_nothing_restricted(got: dict[str, Any]) -> None:
    for call in got["search"]:
        keys = [] if call.is_error else [p["key"] for p in result(call)]
        assert not [k for k in keys if k.startswith(SECRETS)], keys
    for call in got["narrowed"]:  # as if the prefix held nothing at all
        assert call.is_error and "matches no indexed document" in text(call), text(call)
    for call in got["answer"]:
        answer = result(call)
        assert not [s["key"] for s in answer["sources"] if s["key"].startswith(SECRETS)], answer["sources"]
        assert "4.2 million" not in answer["text"] and "19th" not in answer["text"]
    unknown = text(got["unknown"]).replace("finance/nothing.md", "KEY")
    for key, call in got["documents"].items():  # answered as an unknown key is: no existence leak
        assert call.is_error and text(call).replace(key, "KEY") == unknown, text(call)
    for key, content in got["resources"].items():
        assert isinstance(content, Exception), f"doc://{key} was read: {content}"
    sources = result(got["sources"])
    assert "finance" not in [r["name"] for r in sources["roots"]] + [s["name"] for s in sources["sources"]]
    assert sources["documents"] == sum(r["documents"] for r in sources["roots"])  # the totals count no more


def http(url: str, token: str) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        async with http_session(url, token) as session:
            return await everything(session)

    return anyio.run(run)


@pytest.mark.parametrize("name", ["all", "hr", "prefixes"])
def test_a_token_never_gets_a_restricted_source_or_another_scopes_learned_answers(
    server: tuple[str, dict[str, str]], name: str
) -> None:
    url, tokens = server
    got = http(url, tokens[name])
    assert_nothing_restricted(got)
    if name == "all":  # the default scope's learned answers are everyone's
        assert "carry over" in result(got["default_learned"])["text"]


def test_a_token_whose_scope_names_the_source_reads_it(server: tuple[str, dict[str, str]]) -> None:
    url, tokens = server
    got = http(url, tokens["finance"])
    assert FINANCE_DOC in [p["key"] for p in result(got["search"][0])]
    assert "4.2 million" in result(got["documents"][FINANCE_DOC])["text"]
    assert "4.2 million" in got["resources"][FINANCE_DOC].text
    assert FINANCE_DOC in [s["key"] for s in result(got["answer"][0])["sources"]]
    assert "finance" in [r["name"] for r in result(got["sources"])["roots"]]
    assert got["documents"][OTHER_LEARNED].is_error  # the source only: still not another scope's answers


def test_stdio_never_gets_a_restricted_source_or_another_scopes_learned_answers(folder: Path, tmp_path: Path) -> None:
    index = shutil.copytree(folder / "index", tmp_path / "index")  # the HTTP server holds the module's

    async def run() -> dict[str, Any]:
        async with stdio_session(env(folder, index), tmp_path) as session:
            return await everything(session)

    got = anyio.run(run)
    assert_nothing_restricted(got)
    assert "carry over" in result(got["default_learned"])["text"]

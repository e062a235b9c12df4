"""The MCP server's parts in this process: the tokens file and its one-line errors, the token check, the
rate limit, the tools' scope arithmetic over the corpus index, and the synced sources' status."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.answer.pipeline import AnswerPipeline
from bot.errors import ConfigError
from bot.mcp.auth import Caller, RateLimiter, find_caller, hash_token, load_tokens, new_token
from bot.mcp.status import sources_reader
from bot.mcp.tools import DocsTools, IndexAccess, McpToolError, SourceInfo
from bot.settings import load_settings
from bot.state import State
from retrieval.config import IndexConfig
from retrieval.embeddings import Embedder
from retrieval.models import SearchFilter
from retrieval.search import Searcher
from retrieval.sources.config import load_sources
from retrieval.store import open_client, open_collection

EVERYTHING = Caller("all", SearchFilter(), 0)


def test_a_new_token_line_loads_back_and_only_its_token_matches(tmp_path: Path) -> None:
    token, line = new_token("hr-agent", SearchFilter(("hr/",), ("policy",)))
    (tmp_path / "tokens.yml").write_text(line + "\n")
    [entry] = load_tokens(tmp_path / "tokens.yml", default_rate=60, sources=[])
    assert entry.caller == Caller("hr-agent", SearchFilter(("hr/",), ("policy",)), 60)
    assert entry.sha256 == hash_token(token) and token not in line  # only the hash is kept
    assert find_caller([entry], token) == entry.caller
    assert find_caller([entry], token + "x") is None and find_caller([], token) is None


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("- a\n- b\n", "expected one line per token"),
        ("bot: {sha256: abc}\n", "bot.sha256: expected the token's sha256 as 64 hex digits"),
        (f"bot: {{sha256: {'a' * 64}, path_prefixes: [1]}}\n", "bot.path_prefixes: expected a list of non-empty"),
        (f"bot: {{sha256: {'a' * 64}, rate_limit_per_minute: -1}}\n", "bot.rate_limit_per_minute: expected"),
        (f"bot: {{sha256: {'a' * 64}, scope: x}}\n", "bot: expected a mapping with keys among"),
        (f"bot: {{sha256: {'a' * 64}, sources: [payroll]}}\n", "bot.sources names 'payroll', no such source"),
        ("bot: {sha256: [\n", "not valid YAML"),
    ],
)
def test_a_bad_tokens_file_is_one_line_naming_it(tmp_path: Path, text: str, says: str) -> None:
    path = tmp_path / "tokens.yml"
    path.write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_tokens(path, default_rate=60, sources=[])
    message = str(raised.value)
    assert message.startswith(f"QWENBOT_MCP_TOKENS_FILE ({path}): ") and says in message and "\n" not in message


def test_the_rate_limit_is_per_caller_over_a_sliding_minute() -> None:
    now = [1000.0]
    limiter = RateLimiter(clock=lambda: now[0])
    two = Caller("two", SearchFilter(), 2)
    assert [limiter.wait_needed(two) for _ in range(2)] == [0.0, 0.0]
    now[0] += 20
    assert limiter.wait_needed(two) == pytest.approx(40.0)
    assert limiter.wait_needed(Caller("other", SearchFilter(), 2)) == 0.0
    assert limiter.wait_needed(Caller("free", SearchFilter(), 0)) == 0.0
    now[0] += 41
    assert limiter.wait_needed(two) == 0.0


@pytest.fixture
def tools(corpus_index: Path, embedder: Embedder) -> Iterator[DocsTools]:
    config = IndexConfig(index_dir=corpus_index)
    with Searcher(config, embedder) as searcher:
        index = IndexAccess(config, searcher, searcher.stats, open_collection(config, client=open_client(config)))
        yield DocsTools(index, load_settings(None, index_dir=corpus_index).answer_config(), None)


def test_a_request_filter_narrows_a_tag_scope_and_never_widens_it(tools: DocsTools) -> None:
    engineering = Caller("eng", SearchFilter((), ("engineering",)), 0)
    found = tools.search(engineering, "who is on call this week", 10, "engineering/", [])
    assert found and all(p.key.startswith("engineering/") for p in found)
    with pytest.raises(McpToolError, match=r"^path_prefix 'hr/' matches no indexed document within the scope"):
        tools.search(engineering, "how many vacation days", 5, "hr/", [])
    with pytest.raises(McpToolError, match=r"^path_prefix 'nowhere/' matches no indexed document: list_sources"):
        tools.search(EVERYTHING, "vacation", 5, "nowhere/", [])


def test_a_document_from_its_chunks_says_each_paragraph_once(tools: DocsTools) -> None:
    doc = tools.document(EVERYTHING, "engineering/on-call-handbook.md")
    paragraphs = [p for p in doc.text.split("\n\n") if len(p) > 40]
    assert doc.chunks > 3 and len(paragraphs) == len(set(paragraphs))
    source = Path("docs_corpus/engineering/on-call-handbook.md").read_text().split("\n---\n", 1)[1]
    body = [p.strip() for p in source.split("\n\n") if len(p.strip()) > 40 and not p.startswith("#")]
    assert [p for p in body if p not in doc.text] == []  # every paragraph of the file is there, whole


def test_the_synced_sources_status_from_the_bot_state(tmp_path: Path) -> None:
    (tmp_path / "sources.yml").write_text(
        "sources:\n"
        "  - {name: handbook, type: git, url: /srv/handbook.git}\n"
        "  - {name: wiki, type: git, url: /srv/wiki.git}\n"
    )
    settings = load_settings(None, sources_file=tmp_path / "sources.yml", state_db=tmp_path / "state.sqlite3")
    sources = settings.sources_config()
    read = sources_reader(load_sources(sources.sources_file, sources.env), settings.state_config())
    assert [s.last_success for s in read()] == ["never", "never"]  # no state yet: nothing synced
    state = State.from_config(settings.state_config())
    state.sources.record_success("handbook", next_due=None)
    state.sources.record_failure("wiki", "source 'wiki' (git): clone failed at git.internal", next_due=None)
    state.close()
    handbook, wiki = read()
    assert handbook.name == "handbook" and handbook.kind == "git" and handbook.ok and handbook.last_success != "never"
    assert wiki == SourceInfo("wiki", "git", 0, "never", wiki.next_sync, False)
    assert "git.internal" not in json.dumps([handbook.__dict__, wiki.__dict__])  # the error's text stays home


def test_answer_uses_the_callers_scope(tools: DocsTools) -> None:
    assert isinstance(tools.pipeline, AnswerPipeline)
    got = tools.answer(Caller("eng", SearchFilter(("engineering/",)), 0), "how many vacation days do we get?")
    assert all(s.key.startswith("engineering/") for s in got.sources)

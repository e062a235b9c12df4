"""A source's documents answer only in the channels its `answer_in` gives it: every other channel's
filter excludes the source's prefix, and dense search (over-fetched or exact over a narrow scope's
vectors, cached per scope), keyword search and the hits they fuse all honour it."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, cast

import pytest

from bot.config import SlackConfig
from bot.indexing.control import search_handlers
from bot.settings import load_settings
from bot.slack.policy import Policy, PolicyError, load_channel_scopes
from bot.state.limits import Limits
from retrieval.config import IndexConfig
from retrieval.indexer import Indexer
from retrieval.lexical import in_scope
from retrieval.models import SearchFilter
from retrieval.search import Searcher
from retrieval.sources.spec import SourceSpec

ENG = "C0ENGINEER"  # the team's channel: the restricted source answers here
HR = "C0HRHELP01"  # listed, not given the source
RANDOM = "C0RANDOM01"  # not listed: the default scope
SECRET_QUESTION = "What does the XK-42 gasket alarm mean and who resets the chiller?"
SECRET_DOC = "team-space/alarms/xk42.md"

SCOPES = f"""
channels:
  {ENG}:
    sources: [team-space]
    path_prefixes: [eng/]
  {HR}:
    path_prefixes: [hr/]
    tags: [gasket]
"""
SOURCES = [
    SourceSpec("team-space", "confluence", answer_in=(ENG,)),
    SourceSpec("handbook", "git"),  # everywhere
]


NO_LIMITS = cast(Limits, None)  # no rate limit is set: the limiter never reads the state


def slack_config(scopes: Path | None) -> SlackConfig:
    return load_settings(None, channel_scopes_file=scopes, rate_limit_per_minute=0).slack_config()


def policy(tmp_path: Path, scopes: str = SCOPES, sources: list[SourceSpec] = SOURCES) -> Policy:
    path = tmp_path / "scopes.yml"
    path.write_text(scopes, encoding="utf-8")
    return Policy.from_config(slack_config(path), NO_LIMITS, sources)


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory, embedder) -> IndexConfig:
    """The docs folder (many documents, so that a one-source scope is narrow) and a source's mirror
    indexed as its root `team-space`, as a sync leaves it."""
    docs, mirror = tmp_path_factory.mktemp("docs"), tmp_path_factory.mktemp("mirror")
    for n in range(24):
        write(docs / f"eng/service-{n}.md", f"Service {n}", f"Service {n} restarts nightly; its owner is team {n}.")
    write(docs / "hr/vacation.md", "Vacation", "Full-time employees get 25 vacation days per calendar year.")
    write(docs / "hr/gaskets.md", "Gasket orders", "Order spare gaskets through the facilities portal.", "gasket")
    text = "The XK-42 gasket alarm means the chiller needs a reset: team Zephyr resets it (extension 4471)."
    write(mirror / "alarms/xk42.md", "XK-42 alarm", text, "gasket")
    config = IndexConfig(index_dir=tmp_path_factory.mktemp("index"))
    assert Indexer(config, embedder).run([docs], progress=False).failed == 0
    indexer = Indexer(config, embedder, docs_dir=docs)
    assert indexer.run([mirror], progress=False, add_root="team-space").failed == 0
    return config


def write(path: Path, title: str, text: str, *tags: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tag_line = f"tags: [{', '.join(tags)}]\n" if tags else ""
    path.write_text(f"---\ntitle: {title}\n{tag_line}url: https://wiki.example/{title}\n---\n\n{text}\n")


@pytest.fixture(scope="module")
def searcher(index: IndexConfig, embedder):
    with Searcher(index, embedder) as s:
        yield s


def test_an_excluded_prefix_never_passes_whatever_else_matches() -> None:
    only_out = SearchFilter(exclude_prefixes=("team-space/",))
    assert not only_out.is_empty
    assert in_scope("eng/a.md", (), only_out) and not in_scope("team-space/a.md", (), only_out)
    assert in_scope("team-space-old/a.md", (), only_out)
    tagged = SearchFilter(tags=("gasket",), exclude_prefixes=("team-space/",))
    assert not in_scope("team-space/a.md", ("gasket",), tagged) and in_scope("hr/a.md", ("gasket",), tagged)


def searches(searcher: Searcher, flt: SearchFilter) -> dict[str, set[str]]:
    """The documents each way of searching finds for the secret question within `flt`."""
    lexical = searcher._current_lexical()
    _, mask = lexical.scope(flt) if not flt.is_empty else (None, None)
    keyword_ids = {cid for cid, _ in lexical.search(SECRET_QUESTION, 50, mask)}
    keyword = {lexical.paths[lexical.path_of[lexical.ids.index(cid)]] for cid in keyword_ids}
    return {
        "hybrid": {h.path for h in searcher.search(SECRET_QUESTION, k=10, filter=flt)},
        "dense": {h.path for h in searcher.dense_search(SECRET_QUESTION, k=10, filter=flt)},
        "keyword": keyword,
    }


def test_a_restricted_source_answers_in_its_channel_only(tmp_path: Path, searcher: Searcher) -> None:
    rules = policy(tmp_path)
    # the team's channel first, so that its narrow scope's vectors are cached before the others search
    found = searches(searcher, rules.scope_for(ENG, is_dm=False))
    assert all(SECRET_DOC in paths for paths in found.values()), found
    for channel, is_dm in ((HR, False), (RANDOM, False), ("D0ALICE01", True)):
        flt = rules.scope_for(channel, is_dm)
        assert "team-space/" in flt.exclude_prefixes
        for way, paths in searches(searcher, flt).items():
            assert not any(p.startswith("team-space/") for p in paths), (channel, way, paths)
    # the assistant thread of someone viewing the team's channel: its scope
    assert SECRET_DOC in {h.path for h in searcher.search(SECRET_QUESTION, filter=rules.scope_for("D0X", True, ENG))}


def test_the_hr_scope_is_narrow_and_its_cached_vectors_leave_the_source_out(searcher: Searcher) -> None:
    """HR's tags reach the source's document too: the exclusion wins, on the exact (narrow) dense path."""
    flt = SearchFilter(path_prefixes=("hr/",), tags=("gasket",), exclude_prefixes=("team-space/",))
    lexical = searcher._current_lexical()
    assert lexical.scope(flt)[1].mean() < 0.1  # narrow: searched over its own vectors
    unrestricted = dataclasses.replace(flt, exclude_prefixes=())
    assert SECRET_DOC in {h.path for h in searcher.dense_search(SECRET_QUESTION, filter=unrestricted)}
    assert SECRET_DOC not in {h.path for h in searcher.dense_search(SECRET_QUESTION, filter=flt)}
    assert SECRET_DOC not in {h.path for h in searcher.search(SECRET_QUESTION, filter=flt)}


def test_dms_follow_the_default_scope(tmp_path: Path, searcher: Searcher) -> None:
    sources = [SourceSpec("team-space", "confluence", answer_in=("default",))]
    rules = policy(tmp_path, f"channels:\n  {HR}:\n    path_prefixes: [hr/]\n", sources)
    assert SECRET_DOC in {h.path for h in searcher.search(SECRET_QUESTION, filter=rules.scope_for("D0A", True))}
    assert SECRET_DOC in {h.path for h in searcher.search(SECRET_QUESTION, filter=rules.scope_for(RANDOM, False))}
    assert not {h.path for h in searcher.search(SECRET_QUESTION, filter=rules.scope_for(HR, False))} & {SECRET_DOC}


def test_the_control_channel_keeps_the_exclusion(searcher: Searcher) -> None:
    """`qwenbot ask` beside a running bot searches through it: the filter crosses intact."""
    sent: list[dict[str, Any]] = []
    flt = SearchFilter(exclude_prefixes=("team-space/",))
    args = {"query": SECRET_QUESTION, "k": 10, "filter": dataclasses.asdict(flt)}
    assert search_handlers(searcher)["search"](args, sent.append) == 0
    assert not any(hit["path"].startswith("team-space/") for hit in sent[0]["search"])


@pytest.mark.parametrize(
    ("scopes", "sources", "line"),
    [
        (f"channels:\n  {ENG}:\n    sources: [wiki]\n", SOURCES, "channels.C0ENGINEER.sources names 'wiki', no such"),
        ("default:\n  sources: [team-space]\n", SOURCES, "whose answer_in does not include 'default'"),
        (
            f"channels:\n  {HR}:\n    path_prefixes: [hr/]\n",
            SOURCES,
            "source 'team-space': answer_in names C0ENGINEER, which",
        ),
    ],
)
def test_a_scope_or_answer_in_that_cannot_work_is_one_line(
    tmp_path: Path, scopes: str, sources: list[SourceSpec], line: str
) -> None:
    with pytest.raises(PolicyError) as caught:
        policy(tmp_path, scopes, sources)
    assert line in str(caught.value) and "\n" not in str(caught.value)


def test_without_a_scopes_file_answer_in_default_is_all_it_can_name(tmp_path: Path) -> None:
    rules = Policy.from_config(slack_config(None), NO_LIMITS, [SourceSpec("s", "git", answer_in=("default",))])
    assert rules.scope_for("C0ANY0001", False) == SearchFilter()
    with pytest.raises(PolicyError, match="QWENBOT_CHANNEL_SCOPES_FILE is unset"):
        Policy.from_config(slack_config(None), NO_LIMITS, [SourceSpec("s", "git", answer_in=(ENG,))])
    assert load_channel_scopes(None).named_sources == {}

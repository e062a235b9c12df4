"""The sources in the bot (bot/sources/runner.py): each sync under the shared lock, its status recorded,
a failing source backed off (Retry-After honoured) without stopping the others or emptying its documents,
and a due sync run by one of the replicas sharing the state. Real website sources on loopback sites, the
real indexer and a real SQLite state."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from support.docs_site import DocsSite, docs_site, page
from support.processes import wait_until

from bot.config import SourcesConfig
from bot.errors import UsageError
from bot.sources.runner import BACKOFF_FIRST, SourceRunner, next_due
from bot.state import State
from bot.state.db import StateError
from bot.state.sources import SourceStatus
from retrieval.config import IndexConfig
from retrieval.embeddings import Embedder
from retrieval.indexer import Indexer
from retrieval.models import IndexStats
from retrieval.sources.spec import SourceSpec

HOUR = 3600.0


def site_with(site: DocsSite, title: str, text: str) -> None:
    site.put("/docs/", page("Index", "<p>The team's pages.</p>", ["page.html"]))
    site.put("/docs/page.html", page(title, f"<p>{text}</p>"))


@pytest.fixture
def sites() -> Iterator[tuple[DocsSite, DocsSite]]:
    with docs_site() as good, docs_site() as bad:
        site_with(good, "Parking", "Staff park their bicycles in the basement of building C, next to the lifts.")
        site_with(bad, "Gaskets", "The XK-42 gasket alarm means the chiller needs a reset by the facilities desk.")
        yield good, bad


def website(name: str, site: DocsSite) -> SourceSpec:
    return SourceSpec(name, "website", {"start_url": site.url("/docs/")}, interval_minutes=60)


class Setup:
    """Runners over one state file and one index, as replicas (or a bot and a terminal) share them."""

    def __init__(self, tmp_path: Path, embedder: Embedder, specs: list[SourceSpec]) -> None:
        self.tmp_path, self.specs = tmp_path, specs
        self.index = IndexConfig(index_dir=tmp_path / "index")
        (tmp_path / "docs").mkdir()
        self.indexer = Indexer(self.index, embedder, docs_dir=tmp_path / "docs")
        self.states: list[State] = []

    def runner(self) -> SourceRunner:
        state = State(self.tmp_path / "state.sqlite3")
        self.states.append(state)
        config = SourcesConfig(None, self.tmp_path / "sources")
        return SourceRunner(config, self.specs, state, self.index_root, self.remove_root)

    def index_root(self, name: str, folder: Path, why: str) -> IndexStats:
        return self.indexer.run([folder], progress=False, add_root=name)

    def remove_root(self, name: str) -> None:
        self.indexer.remove([name])

    def documents(self) -> set[str]:
        return {d.key for root in self.indexer.listing().roots for d in root.documents}


@pytest.fixture
def setup(tmp_path: Path, embedder: Embedder, sites: tuple[DocsSite, DocsSite]) -> Iterator[Setup]:
    good, bad = sites
    made = Setup(tmp_path, embedder, [website("good", good), website("bad", bad)])
    yield made
    for state in made.states:
        state.close()


def test_backoff_is_exponential_capped_and_honours_retry_after() -> None:
    spec = SourceSpec("s", "git", interval_minutes=60)
    assert next_due(spec, 0, None, 0) == HOUR
    assert [next_due(spec, n, None, 0) for n in (1, 2, 3)] == [BACKOFF_FIRST, 2 * BACKOFF_FIRST, 4 * BACKOFF_FIRST]
    assert next_due(spec, 30, None, 0) == 8 * HOUR  # capped: a broken source is still tried, rarely
    assert next_due(spec, 1, 900, 0) == 900  # the source asked for 15 minutes
    quick = SourceSpec("q", "git", interval_minutes=0.5)
    assert next_due(quick, 1, None, 0) == 30  # never later than the interval at first


def test_a_failing_source_backs_off_and_keeps_its_documents_while_the_others_sync(
    setup: Setup, sites: tuple[DocsSite, DocsSite]
) -> None:
    good, bad = sites
    runner = setup.runner()
    lines: list[str] = []
    assert runner.sync_named(None, lines.append, "test") == 0, lines
    assert {"good/docs/page.md", "bad/docs/page.md"} <= setup.documents()

    bad.token = "only-with-a-token"  # the site starts refusing us: 401
    good.put("/docs/page.html", page("Parking", "<p>Staff park in lot B now; the basement is closed.</p>"))
    lines.clear()
    started = time.time()
    assert runner.sync_named(None, lines.append, "test") == 1
    [error] = [line for line in lines if line.startswith("error: ")]
    assert error.startswith("error: source 'bad' (website): ") and "\n" not in error
    assert any(line.startswith("good (website): 0 added, 1 changed") for line in lines), lines
    assert "bad/docs/page.md" in setup.documents()  # a failure never empties the source

    statuses = {s.source: s for s in runner.state.sources.all_status()}
    assert statuses["bad"].failures == 1 and statuses["bad"].last_error == error.removeprefix("error: ")
    assert statuses["bad"].next_due is not None and statuses["bad"].next_due < started + 2 * BACKOFF_FIRST
    assert statuses["good"].failures == 0 and statuses["good"].next_due is not None
    assert statuses["good"].next_due >= started + HOUR

    runner.sync_named("bad", lines.append, "test")
    again = runner.state.sources.status("bad")
    assert again.failures == 2 and again.next_due is not None and again.next_due >= time.time() + BACKOFF_FIRST


def test_a_rate_limited_source_waits_as_long_as_it_was_asked(setup: Setup, sites: tuple[DocsSite, DocsSite]) -> None:
    _, bad = sites
    bad.troubles = [(429, "7200")]  # two hours: more than a sync waits out itself
    runner = setup.runner()
    before = time.time()
    outcome = runner.sync(runner.specs["bad"], "test")
    assert outcome is not None and not outcome.ok and "429" in outcome.line
    due = runner.state.sources.status("bad").next_due
    assert due is not None and due >= before + 7200


def test_a_due_sync_runs_on_one_replica(setup: Setup, sites: tuple[DocsSite, DocsSite]) -> None:
    good, _ = sites
    first, second = setup.runner(), setup.runner()
    spec = first.specs["good"]
    with second.state.exclusive("reindex") as held:  # another replica is indexing
        assert held
        assert first.sync(spec, "scheduled", only_if_due=True) is None
    assert good.hits == []
    outcomes = []
    threads = [
        threading.Thread(target=lambda r=r: outcomes.append(r.sync(spec, "scheduled", wait=60, only_if_due=True)))
        for r in (first, second)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ran = [o for o in outcomes if o is not None]
    assert len(ran) == 1 and ran[0].ok, outcomes  # the other found it synced when its turn came
    assert [h.path for h in good.hits].count("/docs/page.html") == 1


def test_an_unknown_source_names_the_known_ones(setup: Setup) -> None:
    with pytest.raises(UsageError, match="unknown source 'wiki': the sources are bad, good"):
        setup.runner().sync_named("wiki", print, "test")


def test_a_source_taken_out_of_the_sources_file_leaves_the_index(setup: Setup) -> None:
    """Its answer_in went with its entry: left in the index, its documents would answer everywhere."""
    assert setup.runner().sync_named(None, print, "test") == 0
    assert "bad/docs/page.md" in setup.documents()
    setup.specs = [s for s in setup.specs if s.name != "bad"]
    runner = setup.runner()
    runner.drop_removed()
    assert not any(key.startswith("bad/") for key in setup.documents())
    assert "good/docs/page.md" in setup.documents()
    assert [s.source for s in runner.state.sources.all_status()] == ["good"]


def test_the_schedule_outlives_an_outage_of_the_state(
    tmp_path: Path, embedder: Embedder, sites: tuple[DocsSite, DocsSite], monkeypatch: pytest.MonkeyPatch
) -> None:
    good, _ = sites
    setup = Setup(tmp_path, embedder, [replace(website("good", good), interval_minutes=0.05)])
    runner = setup.runner()
    real, calls = runner.state.sources.status, []

    def flaky(source: str) -> SourceStatus:
        calls.append(source)
        if len(calls) <= 2:  # the database is down for the first rounds
            raise StateError("the state database at state.sqlite3 is unreachable: down")
        return real(source)

    monkeypatch.setattr(runner.state.sources, "status", flaky)
    stop = threading.Event()
    loop = threading.Thread(target=runner.run, args=(stop,), daemon=True)
    loop.start()
    try:
        wait_until(lambda: real("good").last_success, "a sync once the database is back", timeout=120)
    finally:
        stop.set()
        loop.join(timeout=60)
        for state in setup.states:
            state.close()
    assert len(calls) > 2 and not loop.is_alive()

"""The git source (retrieval/sources/git.py) against real repositories the tests create: a local path,
`git daemon` on a loopback port, and git's smart HTTP behind Basic auth (the token's path). Synced by the
real engine into the real shared state (SQLite) and indexed by the real indexer."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest
from support.git_repo import Repo, git_daemon, git_http
from support.servers import free_port

from bot.state import State
from retrieval.config import IndexConfig
from retrieval.embeddings import Embedder
from retrieval.errors import (
    SourceAuthError,
    SourceConfigError,
    SourceError,
    SourceNotFoundError,
    SourceUnreachableError,
)
from retrieval.indexer import Indexer
from retrieval.models import Hit, IndexStats
from retrieval.search import Searcher
from retrieval.sources.git import connector
from retrieval.sources.spec import SourceSpec
from retrieval.sources.sync import SourceSync, SyncReport

WEB = "https://git.example.com/eng/handbook/blob/{branch}/{path}"
VPN = "---\ntitle: VPN access\n---\n# Connecting\n\nConnect with WireGuard to vpn.example.com using your laptop.\n"
LEAVE = "# Annual leave\n\nEveryone gets 25 days of annual leave a year.\n"
GUIDE = "Style guide\n===========\n\nWrite headings in sentence case, never in title case.\n"


@pytest.fixture
def state(tmp_path: Path) -> Iterator[State]:
    state = State(tmp_path / "state.sqlite3")
    yield state
    state.close()


@pytest.fixture
def handbook(tmp_path: Path) -> Repo:
    repo = Repo.create(tmp_path / "served" / "handbook")
    repo.write("docs/vpn.md", VPN)
    repo.write("docs/leave.md", LEAVE)
    repo.write("docs/guide.rst", GUIDE)
    repo.write("docs/drafts/secret-plan.md", "# Plan\n\nNot for the bot yet.\n")
    repo.write("docs/logo.png", b"\x89PNG\r\n")
    repo.write("README.md", "# Repository readme\n\nOutside the synced folder.\n")
    repo.commit("first", date="2026-03-01T09:00:00+00:00")
    return repo


class Syncer:
    """One replica syncing one git source: its own work folder, mirror and index; a shared state."""

    def __init__(self, root: Path, state: State, embedder: Embedder, settings: Mapping[str, object]) -> None:
        self.spec = SourceSpec("handbook", "git", settings)
        self.root, self.state, self.embedder = root, state, embedder
        (root / "docs").mkdir(parents=True, exist_ok=True)
        self.config = IndexConfig(index_dir=root / "index")

    def sync(self) -> SyncReport:
        git = connector(self.spec, self.root / "work")
        return SourceSync(self.spec, git, self.state.sources, self.root / "mirror").run(self.index)

    def index(self, mirror: Path) -> IndexStats:
        indexer = Indexer(self.config, self.embedder, docs_dir=self.root / "docs")
        return indexer.run([mirror], progress=False, add_root=self.spec.name)

    def search(self, query: str) -> list[Hit]:
        with Searcher(self.config, self.embedder) as searcher:
            return searcher.search(query, k=3)


def synced_paths(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


@pytest.mark.slow
def test_a_local_repository_syncs_its_folder_and_follows_adds_changes_renames_and_deletes(
    tmp_path: Path, handbook: Repo, state: State, embedder: Embedder
) -> None:
    settings = {"url": str(handbook.path), "branch": "main", "path": "docs", "exclude": ["drafts/**"], "web_url": WEB}
    replica = Syncer(tmp_path / "a", state, embedder, settings)
    first = replica.sync()
    assert (first.added, first.documents) == (3, 3), first.notes
    mirror = replica.root / "mirror"
    assert synced_paths(mirror) == [".guide.rst.meta.yml", "guide.rst", "leave.md", "vpn.md"]
    hit = replica.search("how do I connect to the VPN with WireGuard")[0]
    assert (hit.path, hit.title, hit.updated) == ("handbook/vpn.md", "VPN access", "2026-03-01")
    assert hit.url == "https://git.example.com/eng/handbook/blob/main/docs/vpn.md"
    assert replica.search("sentence case headings")[0].title == "Style guide"  # the file's own heading

    handbook.write("docs/leave.md", LEAVE.replace("25 days", "30 days"))
    handbook.move("docs/vpn.md", "docs/network/vpn access.md")
    handbook.git("rm", "-q", "docs/guide.rst")
    handbook.write("docs/drafts/another.md", "# Draft\n\nExcluded.\n")
    handbook.write("docs/parking.md", "# Parking\n\nVisitors park in lot B behind the office.\n")
    handbook.commit("second", date="2026-04-02T09:00:00+00:00")
    second = replica.sync()
    assert (second.added, second.changed, second.deleted, second.unchanged) == (1, 2, 1, 0)
    assert second.requests <= 6  # ls-remote, fetch, has-commit, diff, cat-file, log
    assert synced_paths(mirror) == ["leave.md", "network/vpn access.md", "parking.md"]
    hit = replica.search("how do I connect to the VPN with WireGuard")[0]
    assert hit.path == "handbook/network/vpn access.md" and hit.updated == "2026-04-02"
    assert hit.url == "https://git.example.com/eng/handbook/blob/main/docs/network/vpn%20access.md"
    assert "handbook/guide.rst" not in {h.path for h in replica.search("sentence case headings")}
    assert "30 days" in replica.search("how many days of annual leave")[0].text
    assert set(state.sources.load("handbook")[1]) == {"docs/leave.md", "docs/vpn.md", "docs/parking.md"}

    third = replica.sync()  # nothing new: one ls-remote, nothing fetched or re-indexed
    assert (third.added, third.changed, third.deleted, third.unchanged, third.requests) == (0, 0, 0, 3, 1)
    assert third.index is not None and third.index.unchanged == 3 and third.index.chunks_embedded == 0


def test_git_daemon_default_branch_and_a_second_replica_without_a_clone(
    tmp_path: Path, handbook: Repo, state: State, embedder: Embedder
) -> None:
    handbook.git("branch", "-m", "main", "trunk")  # the default branch is found, whatever its name
    with git_daemon(tmp_path / "served", "handbook") as base:
        settings = {"url": f"{base}/handbook", "path": "docs", "include": ["*.md"], "web_url": WEB}
        first = Syncer(tmp_path / "a", state, embedder, settings).sync()
        assert first.added == 3 and state.sources.load("handbook")[0]["branch"] == "trunk"  # vpn, leave, drafts
        other = Syncer(tmp_path / "b", state, embedder, settings)  # no clone, no mirror, no index yet
        again = other.sync()
        assert (again.restored, again.added, again.requests) == (3, 0, 1)  # from the shared state, no fetch
        assert other.search("WireGuard VPN")[0].url == "https://git.example.com/eng/handbook/blob/trunk/docs/vpn.md"

        handbook.write("docs/leave.md", LEAVE.replace("25 days", "28 days"))
        handbook.commit("leave")
        fresh = Syncer(tmp_path / "c", state, embedder, settings)  # lacks the cursor's commit: lists the tree
        report = fresh.sync()
        assert (report.added, report.changed, report.unchanged, report.deleted) == (0, 1, 2, 0)
        assert "28 days" in fresh.search("how many days of annual leave")[0].text


def one_line_error(sync: Callable[[], object], kind: type[SourceError]) -> str:
    with pytest.raises(kind) as err:
        sync()
    message = str(err.value)
    assert message.startswith("source 'handbook' (git): ") and "\n" not in message
    return message


def test_a_bad_url_or_branch_is_one_line_naming_the_source(
    tmp_path: Path, handbook: Repo, state: State, embedder: Embedder
) -> None:
    def syncer(**settings: object) -> Callable[[], SyncReport]:
        return Syncer(tmp_path / "r", state, embedder, settings).sync

    message = one_line_error(syncer(url=str(tmp_path / "nowhere")), SourceNotFoundError)
    assert "check 'url'" in message
    message = one_line_error(syncer(url=str(handbook.path), branch="nope"), SourceNotFoundError)
    assert "no branch 'nope'" in message
    message = one_line_error(syncer(url=f"git://127.0.0.1:{free_port()}/handbook"), SourceUnreachableError)
    assert "cannot reach the repository" in message
    assert state.sources.load("handbook") == (None, {})


def test_a_file_name_that_is_not_utf8_is_passed_over(tmp_path: Path, state: State, embedder: Embedder) -> None:
    repo = Repo.create(tmp_path / "latin1")
    repo.write("ok.md", LEAVE)
    (repo.path / "caf\udce9.md").write_bytes(VPN.encode())  # b"caf\xe9.md": Latin-1, as old repositories have
    repo.commit("names")
    report = Syncer(tmp_path / "r", state, embedder, {"url": str(repo.path)}).sync()
    assert (report.added, report.documents) == (1, 1) and synced_paths(tmp_path / "r" / "mirror") == ["ok.md"]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"url": "https://git.example.com/x.git", "depth": 1}, "unknown setting 'depth'"),
        ({"url": "https://bob:hunter2@git.example.com/x.git"}, "'url' must not hold credentials"),
        ({"url": "git://git.example.com/x.git", "token_env": "T"}, "'token_env' is for https URLs only"),
        ({"url": "https://git.example.com/x.git", "token_env": "UNSET"}, "UNSET ('token_env') is not set"),
        ({"url": "https://git.example.com/x.git", "web_url": "https://h/{repo}/{path}"}, "'web_url' may use"),
        ({"url": "https://git.example.com/x.git", "branch": "-x"}, "'branch' must be a branch name"),
        ({"url": "handbook"}, "'url' must be https://"),
        ({"url": "https://git.example.com/x.git", "path": "../up"}, "'path' must be a folder"),
    ],
)
def test_settings_are_checked_before_any_request(tmp_path: Path, settings: dict[str, object], message: str) -> None:
    with pytest.raises(SourceConfigError) as err:
        connector(SourceSpec("handbook", "git", settings), tmp_path)
    assert str(err.value).startswith("source 'handbook' (git): ") and message in str(err.value)
    assert "hunter2" not in str(err.value)


def test_a_token_reaches_the_server_and_never_an_error_a_log_or_the_disk(
    tmp_path: Path, handbook: Repo, state: State, embedder: Embedder, caplog: pytest.LogCaptureFixture
) -> None:
    token = "glpat-Sup3rS3cretT0ken"
    caplog.set_level(logging.DEBUG)
    with git_http(tmp_path / "served", "x-access-token", token) as server:
        settings = {"url": f"{server.url}/handbook", "branch": "main", "path": "docs", "token_env": "HANDBOOK_TOKEN"}
        replica = Syncer(tmp_path / "a", state, embedder, settings)
        replica.spec = SourceSpec("handbook", "git", settings, env={"HANDBOOK_TOKEN": "wrong-" + token})
        message = one_line_error(replica.sync, SourceAuthError)
        assert "HANDBOOK_TOKEN (token_env)" in message
        replica.spec = SourceSpec("handbook", "git", settings, env={"HANDBOOK_TOKEN": token})
        assert replica.sync().added == 4
        assert server.authorizations  # the token was sent (as Basic auth, through GIT_ASKPASS)
        handbook.git("branch", "-m", "main", "gone")
        message += one_line_error(replica.sync, SourceNotFoundError)
    assert token not in message and token not in caplog.text
    for path in tmp_path.rglob("*"):
        if path.is_file() and "served" not in path.parts:
            assert token.encode() not in path.read_bytes(), path

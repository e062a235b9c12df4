"""The sources' shared state (bot/state/sources.py) on both backends, SQLite and a real PostgreSQL:
what a sync stores for the next replica, and the per-source status the bot shows."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.state import State
from retrieval.sources.base import KnownDocument
from retrieval.sources.mirror import MirroredFile
from retrieval.sources.sync import StoredDocument


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def states(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[State, State]]:
    """Two replicas' views of one fresh state database."""
    location = tmp_path / "state.sqlite3" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    first, second = State(location), State(location)
    yield first, second
    first.close()
    second.close()


def stored(path: str, data: bytes, sidecar: bytes | None = None, version: str = "v1") -> StoredDocument:
    return StoredDocument(version, MirroredFile(path, data, sidecar))


def test_what_one_replica_commits_the_other_loads_with_its_bytes(states: tuple[State, State]) -> None:
    one, other = states
    assert other.sources.load("handbook") == (None, {})
    binary = bytes(range(256)) * 40  # a PDF's bytes: every byte value, NULs included
    one.sources.commit(
        "handbook",
        {"commit": "abc123", "n": [1, 2]},
        {"a": stored("guide/a.md", b"---\ntitle: A\n---\nBody\n"), "b": stored("b.pdf", binary, b"title: B\n")},
        [],
    )
    cursor, known = other.sources.load("handbook")
    assert cursor == {"commit": "abc123", "n": [1, 2]}
    assert known["b"] == KnownDocument("b.pdf", "v1", MirroredFile("b.pdf", binary, b"title: B\n").hash)
    assert other.sources.files("handbook", ["a", "b", "zz"]) == {
        "a": MirroredFile("guide/a.md", b"---\ntitle: A\n---\nBody\n"),
        "b": MirroredFile("b.pdf", binary, b"title: B\n"),
    }
    other.sources.commit("handbook", "def456", {"a": stored("a.md", b"moved", version="v2")}, ["b"])
    cursor, known = one.sources.load("handbook")
    assert cursor == "def456" and known == {"a": KnownDocument("a.md", "v2", MirroredFile("a.md", b"moved").hash)}
    assert one.sources.load("other") == (None, {})  # sources are kept apart


def test_many_documents_are_read_back_in_batches(states: tuple[State, State]) -> None:
    one, _ = states
    docs = {f"d{i}": stored(f"{i}.md", f"doc {i}".encode()) for i in range(1200)}
    one.sources.commit("big", 1, docs, [])
    files = one.sources.files("big", list(docs))
    assert len(files) == 1200 and files["d777"].data == b"doc 777"


def test_the_status_records_attempts_failures_and_successes(states: tuple[State, State]) -> None:
    one, other = states
    assert one.sources.status("wiki").last_attempt is None and one.sources.all_status() == []
    one.sources.commit("wiki", 1, {"a": stored("a.md", b"a"), "b": stored("b.md", b"b")}, [])
    one.sources.record_success("wiki", next_due=1000.0, now=100.0)
    error = "source 'wiki' (confluence): 401 Unauthorized:\nset CONFLUENCE_TOKEN " + "x" * 400
    assert other.sources.record_failure("wiki", error, next_due=1060.0, now=200.0) == 1
    assert other.sources.record_failure("wiki", "source 'wiki' (confluence): timed out", 1120.0, now=300.0) == 2
    status = one.sources.status("wiki")
    assert (status.documents, status.last_attempt, status.last_success, status.failures, status.next_due) == (
        2,
        300.0,
        100.0,
        2,
        1120.0,
    )
    assert status.last_error == "source 'wiki' (confluence): timed out"
    other.sources.record_failure("news", error, next_due=None, now=300.0)
    news = one.sources.status("news")
    assert "\n" not in (news.last_error or "") and len(news.last_error or "") == 300 and news.documents == 0
    one.sources.record_success("wiki", next_due=2000.0, now=400.0)
    assert [(s.source, s.failures, s.last_error) for s in other.sources.all_status()] == [
        ("news", 1, news.last_error),
        ("wiki", 0, None),
    ]
    one.sources.forget("wiki")
    assert other.sources.load("wiki") == (None, {}) and [s.source for s in other.sources.all_status()] == ["news"]

"""Fixtures that several test modules use (registered as a plugin by tests/conftest.py, which holds the
session-wide ones: the embedder, the docs_corpus index, the fake Slack, PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from retrieval.embeddings import Embedder
from support.docs import small_docs_index
from support.safety import evil_docs_index

if TYPE_CHECKING:
    from support.slack_bot import Bot


@pytest.fixture
def make_bot(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Bot]]:
    """make_bot(slack=None, **settings overrides) -> a running bot (HTTP mode, in this process) on the
    docs_corpus index unless `index_dir` is given; everything is stopped afterwards."""
    # imported here: every test session loads this plugin, and most tests need no bot
    from support.slack_bot import bot_builder

    # the session's docs_corpus index is built only for a bot that uses it
    with bot_builder(tmp_path, lambda: request.getfixturevalue("corpus_index")) as build:
        yield build


@pytest.fixture
def env(no_settings: pytest.MonkeyPatch, corpus_index: Path) -> pytest.MonkeyPatch:
    """A clean environment for a command run in this process: no settings from this machine, the
    session's docs_corpus index, no model endpoint (and no retries, a short budget for one set)."""
    no_settings.setenv("QWENBOT_INDEX_DIR", str(corpus_index))
    no_settings.setenv("QWENBOT_LLM_RETRIES", "0")
    no_settings.setenv("QWENBOT_LLM_TOTAL_TIMEOUT", "5")
    return no_settings


@pytest.fixture(scope="session")
def small_index(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Path:
    """tests/fixtures/small_docs indexed once per session; the folder to use as QWENBOT_INDEX_DIR."""
    return small_docs_index(tmp_path_factory.mktemp("small_docs_index"), embedder)


@pytest.fixture(scope="session")
def evil_index(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Path:
    """Vacation docs whose front matter and text are hostile (tests/support/safety.py), indexed once per
    session; read-only, as corpus_index."""
    return evil_docs_index(tmp_path_factory.mktemp("evil_docs"), tmp_path_factory.mktemp("evil_index"), embedder)


@pytest.fixture
def wh(no_settings: pytest.MonkeyPatch, tmp_path: Path, write_doc) -> Path:
    """A small warehouse docs folder as QWENBOT_DOCS_DIR (relative, as an admin sets it), and its index
    at tmp_path/index (its documents: support.cli.WH_PATHS)."""
    folder = tmp_path / "wh"
    write_doc(folder, "people/parking.md", "Parking", {"Lots": "Staff park in lot B; visitors use lot A."})
    write_doc(folder, "safety/forklift-certification.md", "Forklifts", {"Who": "Only certified staff drive forklifts."})
    write_doc(folder, "hr/vacation.md", "Vacation", {"Days": "Warehouse staff get 22 vacation days a year."})
    no_settings.setenv("QWENBOT_DOCS_DIR", "wh")
    no_settings.setenv("QWENBOT_INDEX_DIR", str(tmp_path / "index"))
    return folder

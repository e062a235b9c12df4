"""Fixtures shared across test modules."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

# Offline, as the qwenbot command sets it (bot/cli.py): tests call the library directly, and must not
# reach for the Hugging Face hub when started without `make` either (an unknown model name would retry
# for about 20 s, then log warnings of its own).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402
from support import servers  # noqa: E402
from support.fake_slack import FakeSlack  # noqa: E402
from support.paths import CORPUS_DIR  # noqa: E402

from retrieval.config import DEFAULT_EMBEDDING_MODEL, IndexConfig  # noqa: E402
from retrieval.embeddings import Embedder, get_embedder  # noqa: E402

# the fixtures several modules share beyond these (make_bot, env, small_index, evil_index, wh)
pytest_plugins = ["support.fixtures"]


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The real default model (bundled all-MiniLM-L6-v2), loaded once per test session."""
    return get_embedder(DEFAULT_EMBEDDING_MODEL)


@pytest.fixture(scope="session")
def corpus_index(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Path:
    """docs_corpus/ indexed once per test session; the folder to use as QWENBOT_INDEX_DIR.

    Read-only for tests: index into a folder of your own to test indexing itself."""
    from retrieval.indexer import Indexer

    index_dir = tmp_path_factory.mktemp("corpus_index")
    stats = Indexer(IndexConfig(index_dir=index_dir), embedder).run([CORPUS_DIR], progress=False)
    assert stats.failed == 0, stats.errors
    return index_dir


# --- indexing and search fixtures ---------------------------------------------------------------


def _markdown(title: str, sections: dict[str, str], tags: tuple[str, ...] = (), url: str | None = None) -> str:
    front = [f"title: {title}"]
    if tags:
        front.append(f"tags: [{', '.join(tags)}]")
    if url:
        front.append(f"url: {url}")
    front.append("updated: 2026-03-01")
    body = "\n\n".join(f"## {heading}\n\n{text}" for heading, text in sections.items())
    return "---\n" + "\n".join(front) + "\n---\n\n" + f"# {title}\n\n" + body + "\n"


@pytest.fixture
def write_doc():
    """write_doc(folder, rel_path, title, sections, tags=(), url=None) -> Path: a Markdown doc with front
    matter, one `##` section per entry of `sections` (each section becomes its own chunk when short)."""

    def write(folder: Path, rel: str, title: str, sections: dict[str, str], **meta: object) -> Path:
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_markdown(title, sections, **meta), encoding="utf-8")  # type: ignore[arg-type]
        return path

    return write


@pytest.fixture
def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    return servers.free_port()


@pytest.fixture
def no_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No QWENBOT_/SLACK_ variables from this machine, and a working folder without a stray .env."""
    import os

    for name in list(os.environ):
        if name.startswith(("QWENBOT_", "SLACK_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A real PostgreSQL server, started once per test session (tests/support/servers.py); its admin URL."""
    with servers.postgres() as url:
        yield url


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """The URL of a fresh, empty database of its own on the session's PostgreSQL server."""
    return servers.new_database(postgres_server)


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    """The fake Slack Web API (tests/support/fake_slack.py), over real HTTP."""
    with FakeSlack() as fake:
        yield fake

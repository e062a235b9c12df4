"""Safety: what the indexer refuses to read. Defects 4 (a symlink out of the docs folder to ../.env
was indexed and `qwenbot ask` quoted the tokens), 9 (a 50 MB one-paragraph file took 8.6 GB while
chunking) and 13 (20 KB of random bytes named .md became 93 chunks of gibberish)."""

from __future__ import annotations

import random
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from retrieval.chunking import chunk_document
from retrieval.config import IndexConfig
from retrieval.embeddings import Embedder
from retrieval.errors import LoadError
from retrieval.indexer import Indexer
from retrieval.loaders import load_document
from retrieval.models import Block, Document, IndexStats
from retrieval.search import Searcher

TOKEN = "xoxb-1234-never-index-me"


def _index(docs: Path, tmp_path: Path, embedder: Embedder, **config: Any) -> IndexStats:
    return Indexer(IndexConfig(index_dir=tmp_path / "index", **config), embedder).run([docs], progress=False)


def _indexed_text(tmp_path: Path) -> str:
    with Searcher(IndexConfig(index_dir=tmp_path / "index")) as searcher:
        return "\n".join(h.text for h in searcher.search("slack bot token setup notes", k=20))


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (tmp_path / ".env").write_text(f"SLACK_BOT_TOKEN={TOKEN}\n")
    (tmp_path / "outside.md").write_text("# Outside\n\nA document outside the docs folder.\n")
    (folder / "slack-setup-notes.txt").symlink_to(tmp_path / ".env")
    (folder / "linked.md").symlink_to(tmp_path / "outside.md")
    (folder / "inside-link.md").symlink_to(folder / "guide.md")
    (folder / "guide.md").write_text("# Slack setup\n\nThe bot token setup notes live with the admins.\n")
    for name in ("server.pem.txt", "id_rsa.txt", "credentials.md", "prod.env.txt"):
        (folder / name).write_text(f"token {TOKEN}\n")
    return folder


def test_safety_symlinks_out_of_the_root_and_secret_files_are_never_read(
    docs: Path, tmp_path: Path, embedder: Embedder
) -> None:
    stats = _index(docs, tmp_path, embedder)
    assert (stats.added, stats.failed) == (2, 0), stats.errors  # guide.md and the link inside the folder
    assert stats.skipped == 6
    assert TOKEN not in _indexed_text(tmp_path)
    skipped = "\n".join(stats.errors)
    assert f"{docs / 'slack-setup-notes.txt'}: skipped: a link to a file outside" in skipped
    assert f"{docs / 'linked.md'}: skipped: a link to a file outside" in skipped
    for name in ("server.pem.txt", "id_rsa.txt", "credentials.md", "prod.env.txt"):
        assert f"{docs / name}: skipped: named like a secret" in skipped


def test_safety_following_links_outside_is_opt_in_and_still_never_reads_secrets(
    docs: Path, tmp_path: Path, embedder: Embedder
) -> None:
    stats = _index(docs, tmp_path, embedder, follow_symlinks_outside=True)
    assert stats.added == 3  # linked.md now too; the link to .env is still refused by its target's name
    assert TOKEN not in _indexed_text(tmp_path)
    assert any("slack-setup-notes.txt: skipped: named like a secret" in e for e in stats.errors)


def test_safety_files_over_the_size_limit_are_skipped_with_a_warning(tmp_path: Path, embedder: Embedder) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "huge.md").write_text("word " * 300_000)  # 1.5 MB
    (docs / "small.md").write_text("# Small\n\nA small document.\n")
    stats = _index(docs, tmp_path, embedder, max_file_bytes=1024 * 1024)
    assert (stats.added, stats.skipped, stats.failed) == (1, 1, 0)
    assert stats.errors == [f"{docs / 'huge.md'}: skipped: 1.4 MB is over the 1.0 MB limit (QWENBOT_MAX_FILE_MB)"]


def test_safety_one_giant_paragraph_is_chunked_in_bounded_memory(embedder: Embedder) -> None:
    rng = random.Random(7)
    words = ["vacation", "policy", "employees", "network", "access", "badge", "laptop", "expense"]
    text = " ".join(rng.choice(words) for _ in range(140_000))  # about 1 MB on one line
    doc = Document(path="big.md", title="Big", blocks=[Block(text, ())])
    tracemalloc.start()
    started = time.perf_counter()
    try:
        chunks = chunk_document(doc, embedder, 200, 40)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - started < 60
    out = sum(len(c.text) + len(c.embed_text) for c in chunks)  # the chunks themselves: about twice the text
    assert peak < out + 2_000_000, (peak, out)  # no token offsets for the whole text at once
    assert " ".join(c.text for c in chunks).count("vacation") >= text.count("vacation")  # nothing lost


def test_safety_random_bytes_with_a_text_suffix_are_refused(tmp_path: Path) -> None:
    rng = random.Random(13)
    path = tmp_path / "notes.md"
    path.write_bytes(bytes(rng.choice(range(1, 256)) for _ in range(20_000)))  # no NUL byte
    with pytest.raises(LoadError, match=r"binary content: \d+% of the characters are control codes"):
        load_document(path, "notes.md")
    legacy = tmp_path / "legacy.txt"  # Windows-1252 text with a form feed is still text
    legacy.write_bytes("Caf\xe9 menu \u2013 prices\n\x0cPage 2: d\xe9jeuner\n".encode("cp1252") * 50)
    assert "Café" in load_document(legacy, "legacy.txt").blocks[0].text

"""Watching a docs folder that git-sync swaps (issue 19, item 8): with QWENBOT_DOCS_DIR a symlink to
`.worktrees/v1`, swapping the link to v2 and deleting v1 was picked up once; after that new files in v2
were never seen, and the log still said "watching …/.worktrees/v1". The bot watches the path as
configured and follows each swap. Real watchfiles, a real symlink swapped atomically (a new link renamed
over it, as git-sync does), the real indexer and embedding model."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from support.docs import BIKES, LUNCH
from support.processes import wait_until
from support.slack_bot import Bot

from retrieval.config import IndexConfig
from retrieval.embeddings import Embedder
from retrieval.indexer import Indexer

pytestmark = pytest.mark.slow  # a watched folder swapped under the bot, over 10 s

PARKING = "# Parking\n\nVisitors park in lot B, behind the office.\n"
BADGES = "# Badges\n\nLost badges are replaced at the front desk within a day.\n"


def swap(link: Path, target: str) -> None:
    """Points `link` at `target` in one step: a new link, renamed over the old one."""
    fresh = link.with_name(link.name + ".new")
    os.symlink(target, fresh)
    os.replace(fresh, link)


def worktree(root: Path, name: str, files: dict[str, str]) -> Path:
    folder = root / ".worktrees" / name
    folder.mkdir(parents=True)
    for rel, text in files.items():
        (folder / rel).write_text(text)
    return folder


def indexed(bot: Bot) -> set[str]:
    return {h.path for h in bot.runtime.searcher.search("parking lunch bicycles badges", k=20)}


def test_watching_follows_a_symlink_swapped_to_another_folder(
    make_bot: Callable[..., Bot], tmp_path: Path, embedder: Embedder, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.indexing")
    v1 = worktree(tmp_path, "v1", {"parking.md": PARKING})
    docs = tmp_path / "docs"
    os.symlink(".worktrees/v1", docs)
    index_dir = tmp_path / "index"
    Indexer(IndexConfig(index_dir=index_dir), embedder, docs_dir=docs).run([], progress=False)
    bot = make_bot(index_dir=index_dir, docs_dir=docs, watch_docs=True, index_on_start=False)
    wait_until(lambda: f"watching {v1} for changes" in caplog.text, "the watcher to start")

    # git-sync: the new revision in a folder of its own, the link swapped to it, the old folder deleted.
    v2 = worktree(tmp_path, "v2", {"parking.md": PARKING, "lunch.md": LUNCH})
    swap(docs, ".worktrees/v2")
    shutil.rmtree(v1)
    wait_until(lambda: indexed(bot) == {"parking.md", "lunch.md"}, "the swap to v2 to be indexed")
    wait_until(lambda: f"watching {v2} for changes" in caplog.text, "the watcher to move to v2")

    # What was lost before: a file written in the new folder afterwards.
    (v2 / "bikes.md").write_text(BIKES)
    wait_until(lambda: "bikes.md" in indexed(bot), "a new file in v2 to be indexed")

    # A swap that leaves the old folder in place (no event in the watched folder at all) is followed too.
    worktree(tmp_path, "v3", {"parking.md": PARKING, "badges.md": BADGES})
    swap(docs, ".worktrees/v3")
    wait_until(lambda: indexed(bot) == {"parking.md", "badges.md"}, "the swap to v3 to be indexed")
    (v2 / "late.md").write_text("# Late\n\nWritten to the old folder after the swap: not a document.\n")
    (tmp_path / ".worktrees/v3/lunch.md").write_text(LUNCH)
    wait_until(lambda: "lunch.md" in indexed(bot), "a new file in v3 to be indexed")
    assert "late.md" not in indexed(bot)
    assert f"QWENBOT_DOCS_DIR {docs} now points to {tmp_path / '.worktrees/v3'}" in caplog.text

"""Folders of the repository that tests read or start the bot in."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CORPUS_DIR = REPO / "docs_corpus"
SMALL_DOCS = REPO / "tests" / "fixtures" / "small_docs"  # a team's first docs folder, with its questions

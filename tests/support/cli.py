"""Running `qwenbot` commands in this process and reading what they print."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot import cli
from retrieval.config import IndexConfig
from retrieval.store import open_collection

# the documents of the `wh` fixture's docs folder, by their keys
WH_PATHS = ["hr/vacation.md", "people/parking.md", "safety/forklift-certification.md"]


@dataclass
class Result:
    code: int
    out: list[str]
    err: list[str]


def index(capsys: pytest.CaptureFixture[str], *args: str, progress: bool = False) -> Result:
    """`qwenbot index ARGS` with no settings file: its exit code and the lines it printed."""
    argv = ["--env-file", os.devnull, "index", *args] + ([] if progress else ["--no-progress"])
    code = cli.main(argv)
    captured = capsys.readouterr()
    # each command first says which settings file it read: not this job's lines
    err = [line for line in captured.err.splitlines() if not line.startswith("qwenbot: settings: ")]
    return Result(code, captured.out.splitlines(), err)


def indexed_paths(tmp_path: Path) -> list[str]:
    """Every chunk's document path in the index at tmp_path/index, as search and Sources see them
    (duplicates included)."""
    metas = open_collection(IndexConfig(index_dir=tmp_path / "index")).get(include=["metadatas"])["metadatas"]
    return sorted(m["path"] for m in metas)


def rows(output: str) -> dict[str, str]:
    """check name -> outcome, from the doctor's table."""
    out = {}
    for line in output.splitlines():
        if line[:4] in ("PASS", "WARN", "FAIL", "SKIP"):
            out[line[6:22].strip()] = line[:4]
    return out

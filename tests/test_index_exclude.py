"""Keeping files out of the index (issue 21, item 5): a file removed with `qwenbot index --remove` while
still on disk came back at the next run with no warning, and nothing could exclude files or folders
from a root. QWENBOT_EXCLUDE and a root's `.qwenbotignore` now do, and --remove of a file still there
is refused with the line that says how to exclude it. Real indexer and Chroma, through `qwenbot index`."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.cli import WH_PATHS, index, indexed_paths

from retrieval.exclude import Exclusions


@pytest.mark.parametrize(
    ("pattern", "excluded", "kept"),
    [
        ("*.draft.md", ["a.draft.md", "hr/b.draft.md"], ["a.md", "hr/draft.md"]),
        ("drafts", ["drafts/a.md", "hr/drafts/b/c.md", "x/drafts"], ["drafts.md", "hr/mydrafts/a.md"]),
        ("drafts/", ["drafts/a.md", "hr/drafts/b.md"], ["drafts"]),  # a folder only: not the file `drafts`
        ("hr/old.md", ["hr/old.md"], ["old.md", "x/hr/old.md"]),
        ("/hr/old.md", ["hr/old.md"], ["x/hr/old.md"]),
        ("archive/*", ["archive/a.md", "archive/2019/b.md"], ["archive.md"]),  # the folder `archive/2019` too
        ("archive/*.md", ["archive/a.md"], ["archive/2019/b.txt"]),
        ("**/tmp/*.md", ["tmp/a.md", "x/y/tmp/b.md"], ["tmp/sub/c.txt", "tmp.md"]),
        ("report-20[0-1]?.pdf", ["report-2019.pdf", "x/report-2001.pdf"], ["report-2020.pdf"]),
        ("# a comment", [], ["# a comment", "a comment"]),
    ],
)
def test_patterns_match_as_the_readme_says(pattern: str, excluded: list[str], kept: list[str]) -> None:
    exclusions = Exclusions.for_root(Path("/nonexistent"), (pattern,))
    assert [p for p in excluded if exclusions.match(p) is None] == []
    assert [p for p in kept if exclusions.match(p) is not None] == []


def test_excluded_files_are_not_indexed_and_excluding_an_indexed_one_removes_it(
    wh: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], no_settings: pytest.MonkeyPatch
) -> None:
    (wh / "drafts").mkdir()
    (wh / "drafts/new-shift-plan.md").write_text("# Shifts\n\nDraft: the night shift may move to 21:00.\n")
    (wh / "hr/vacation.tmp.md").write_text("# Vacation (editor backup)\n\n22 or 25 days?\n")
    (wh / ".qwenbotignore").write_text("# work in progress\ndrafts/\n")
    no_settings.setenv("QWENBOT_EXCLUDE", "*.tmp.md")
    first = index(capsys)
    assert first.code == 0 and first.out[-1].startswith("this run: 3 files: 3 added,"), first.out  # not even counted
    assert indexed_paths(tmp_path) == WH_PATHS

    listing = index(capsys, "--list").out
    assert listing[1] == f"  excluded: '*.tmp.md' (QWENBOT_EXCLUDE); 'drafts/' ({wh / '.qwenbotignore'})"

    # Excluding a file already indexed removes it at the next run, and it stays out.
    (wh / ".qwenbotignore").write_text("drafts/\npeople/parking.md\n")
    second = index(capsys)
    assert second.code == 0 and "removed: people/parking.md" in second.out, second.out
    assert indexed_paths(tmp_path) == ["hr/vacation.md", "safety/forklift-certification.md"]
    assert index(capsys).out[-1].startswith("this run: 2 files: 0 added, 0 updated, 0 renamed, 2 unchanged")
    # Named on the command line, an excluded file is skipped, and says why.
    named = index(capsys, "wh/people/parking.md")
    assert named.code == 0 and named.out[0] == (
        f"skipped: wh/people/parking.md: excluded by 'people/parking.md' in {wh / '.qwenbotignore'}"
    )
    assert indexed_paths(tmp_path) == ["hr/vacation.md", "safety/forklift-certification.md"]


def test_removing_a_file_still_on_disk_is_refused_with_how_to_exclude_it(
    wh: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert index(capsys).code == 0
    refused = index(capsys, "--remove", "wh/people/parking.md")
    assert refused.code == 1 and refused.out == []
    assert [line for line in refused.err if line.startswith("error: ")] == [
        f"error: wh/people/parking.md is still in the docs folder, so the next `qwenbot index` would add it "
        f"back; nothing removed. Delete it, or exclude it: add the line `people/parking.md` to "
        f"{wh / '.qwenbotignore'} (or to QWENBOT_EXCLUDE), then run `qwenbot index`, which removes it"
    ]
    folder = index(capsys, "--remove", "safety")  # a folder key: the hint excludes the folder
    assert folder.code == 1 and "add the line `safety/` to " in folder.err[0]
    assert indexed_paths(tmp_path) == WH_PATHS

    # Doing as it says: the file goes, and neither the next run nor the one after brings it back.
    (wh / ".qwenbotignore").write_text("people/parking.md\n")
    assert "removed: people/parking.md" in index(capsys).out
    for _ in range(2):
        assert index(capsys).code == 0
        assert "people/parking.md" not in indexed_paths(tmp_path)
    # A file that is gone from disk is removed as before.
    (wh / "hr/vacation.md").unlink()
    assert index(capsys, "--remove", "hr/vacation.md").out[0] == "removed: hr/vacation.md"

"""What `qwenbot index` tells an admin about the index (issue 21): `--list` names every document with its
title, chunks and dates (item 4: it gave counts per root only, so nobody could check a PDF was indexed or
find the key to `--remove`), and a missing docs folder is one line naming it and the setting (item 11:
it was counted as "1 file … 1 failed"). Real indexer and Chroma folder, through `qwenbot index`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.cli import index
from support.docs import make_pdf

from retrieval import index_write


def test_list_names_every_document_with_title_chunks_and_dates(
    wh: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_pdf(wh / "safety/evacuation.pdf", [["Leave by the nearest exit."], ["Meet at the car park."]], "Evacuation")
    (wh / "notes.txt").write_text("Loading dock\n\nTrucks unload at gate 4 between 6 and 10.\n")
    (tmp_path / "handbook").mkdir()
    (tmp_path / "handbook/travel.txt").write_text("Travel \x1b[31mred\x1b[0m\n\nBook trains through the travel desk.\n")
    assert index(capsys).code == 0
    assert index(capsys, "handbook", "--add-root", "handbook").code == 0

    listing = index(capsys, "--list")
    assert listing.code == 0
    today = json.loads((tmp_path / "index/manifest.json").read_text())["roots"][""]["indexed_at"][:10]
    assert listing.out[0].startswith(f"QWENBOT_DOCS_DIR: {wh}: 5 documents, 6 chunks, last indexed {today}")
    documents = listing.out[1:6]
    assert [line.split(":")[0] for line in documents] == [
        "  hr/vacation.md",
        "  notes.txt",
        "  people/parking.md",
        "  safety/evacuation.pdf",
        "  safety/forklift-certification.md",
    ]
    assert documents[0] == f'  hr/vacation.md: "Vacation", 1 chunk, updated 2026-03-01, indexed {today}'
    assert documents[1] == f'  notes.txt: "Loading dock", 1 chunk, indexed {today}'  # no date of its own
    assert documents[3] == f'  safety/evacuation.pdf: "Evacuation", 2 chunks, indexed {today}'
    assert listing.out[6].startswith(f"root 'handbook': {tmp_path / 'handbook'}: 1 documents, 1 chunks")
    # Titles are the documents' own text: control characters are shown escaped, never sent to the terminal.
    assert listing.out[7] == (f'  handbook/travel.txt: "Travel \\u001b[31mred\\u001b[0m", 1 chunk, indexed {today}')
    assert listing.out[-2:] == ["failed files: 0", "index: 6 documents, 7 chunks in 2 roots"]

    # The key a line shows is what --remove takes.
    (wh / "notes.txt").unlink()
    assert index(capsys, "--remove", "notes.txt").out[0] == "removed: notes.txt"


def test_an_index_from_before_titles_lists_its_documents_and_the_next_run_records_them(
    wh: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as old:  # file hashes as the indexer made them then
        old.setattr(index_write, "METADATA_VERSION", b"qwenbot-metadata-v2\n")
        assert index(capsys).code == 0
    manifest = tmp_path / "index/manifest.json"
    raw = json.loads(manifest.read_text())
    for entry in raw["files"].values():
        for key in ("title", "updated", "indexed_at"):
            entry.pop(key)
    manifest.write_text(json.dumps(raw))
    listing = index(capsys, "--list")
    assert "  hr/vacation.md: (title not recorded yet: run `qwenbot index`), 1 chunk" in listing.out
    again = index(capsys)  # re-reads each file once, embedding nothing
    assert again.code == 0 and ": 0 added, 3 updated," in again.out[-1] and "0 chunks embedded" in again.out[-1]
    assert any(line.startswith('  hr/vacation.md: "Vacation", 1 chunk') for line in index(capsys, "--list").out)


def test_a_missing_docs_folder_is_one_line_naming_it_and_nothing_is_counted(
    wh: Path, no_settings: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert index(capsys).code == 0
    no_settings.setenv("QWENBOT_DOCS_DIR", "no-such-docs")  # a typo, or a volume that is not mounted
    result = index(capsys)
    assert result.code == 1
    assert result.out == []
    assert result.err == [
        f"error: QWENBOT_DOCS_DIR is {tmp_path / 'no-such-docs'}, which is not a folder: "
        "set it to the folder that holds your documents"
    ]
    assert index(capsys, "--list").out[-1] == "index: 3 documents, 3 chunks in 1 root"  # nothing removed

"""Knowing and managing what is indexed (issue 10, part 2): root-relative keys, paths outside the roots,
--list / --remove / --prune, renames, the summary and the exit codes. Real indexer, embedding model and
Chroma folder, driven through `qwenbot index` as an admin runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.cli import WH_PATHS, index, indexed_paths

from retrieval.config import IndexConfig
from retrieval.indexer import Indexer
from retrieval.manifest import load_manifest
from retrieval.store import open_collection

BROKEN_PDF = b"%PDF-1.4 this is not really a pdf"


def test_a_root_a_folder_in_it_and_one_file_use_the_same_keys(
    wh: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert index(capsys).code == 0
    assert indexed_paths(tmp_path) == WH_PATHS
    single = index(capsys, "wh/people/parking.md")
    assert single.code == 0 and single.out[-1].startswith(
        "this run: 1 file: 0 added, 0 updated, 0 renamed, 1 unchanged"
    )
    folder = index(capsys, "wh/safety")
    assert folder.code == 0 and ", 1 unchanged," in folder.out[-1]
    assert indexed_paths(tmp_path) == WH_PATHS  # no `parking.md` or `forklift-certification.md` twins
    # An edit made through the subfolder updates the one document the root run made.
    (wh / "safety/forklift-certification.md").write_text("# Forklifts\n\nCertification is renewed every 3 years.\n")
    edited = index(capsys, str(wh / "safety"))  # an absolute path inside the root is the same root
    assert ", 1 updated," in edited.out[-1] and indexed_paths(tmp_path) == WH_PATHS
    manifest = load_manifest(tmp_path / "index" / "manifest.json")
    assert manifest is not None and sorted(manifest.files) == WH_PATHS


def test_a_path_outside_the_roots_is_refused_or_added_as_a_named_root(
    wh: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], write_doc
) -> None:
    write_doc(tmp_path / "handbook", "travel.md", "Travel", {"Trains": "Book trains through the travel desk."})
    assert index(capsys).code == 0
    refused = index(capsys, "handbook")
    assert refused.code == 1 and refused.out == [] and len(refused.err) == 1
    assert refused.err[0].startswith("error: handbook: outside the indexed folders (QWENBOT_DOCS_DIR is ")
    assert refused.err[0].endswith("qwenbot index handbook --add-root NAME")
    assert indexed_paths(tmp_path) == WH_PATHS  # nothing was indexed

    added = index(capsys, "handbook", "--add-root", "handbook")
    assert added.code == 0, added.err
    assert added.out[0].startswith("note: added root 'handbook' (") and "1 file: 1 added," in added.out[-1]
    assert indexed_paths(tmp_path) == sorted([*WH_PATHS, "handbook/travel.md"])
    # Now a path in it is a path in a root; a plain run indexes every root; nothing changed.
    assert index(capsys, "handbook/travel.md").code == 0
    again = index(capsys)
    assert again.code == 0 and again.out[-1].startswith("this run: 4 files: 0 added, 0 updated, 0 renamed, 4 unchanged")

    # A name that would collide with the docs folder's own paths, a second folder under a taken name, a
    # folder inside a root: each refused in one line.
    write_doc(tmp_path / "other", "x.md", "X", {"S": "Some text."})
    for args, message in [
        (("other", "--add-root", "people"), "root name 'people' is also a folder in the docs folder"),
        (("other", "--add-root", "handbook"), "root 'handbook' is already "),
        (("other", "--add-root", "bad/name"), "root name 'bad/name': use letters, digits"),
        (("wh/hr", "--add-root", "hr2"), "overlaps the docs folder (QWENBOT_DOCS_DIR)"),
    ]:
        result = index(capsys, *args)
        assert result.code == 1 and len(result.err) == 1 and message in result.err[0], result.err


def test_list_remove_and_prune(wh: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], write_doc) -> None:
    write_doc(tmp_path / "handbook", "travel.md", "Travel", {"Trains": "Book trains through the travel desk."})
    (wh / "broken.pdf").write_bytes(BROKEN_PDF)
    assert index(capsys).code == 1
    assert index(capsys, "handbook", "--add-root", "handbook").code == 0

    listing = index(capsys, "--list")
    assert listing.code == 0
    assert listing.out[0].startswith(f"QWENBOT_DOCS_DIR: {wh}: 3 documents, 3 chunks, last indexed 20")
    assert [line.split(":")[0] for line in listing.out[1:4]] == [f"  {key}" for key in WH_PATHS]
    assert listing.out[4].startswith(f"root 'handbook': {tmp_path / 'handbook'}: 1 documents, 1 chunks, last indexed")
    assert listing.out[5].startswith('  handbook/travel.md: "Travel", 1 chunk, ')
    assert listing.out[6] == "failed files: 1"
    assert listing.out[7].startswith(f"  {wh / 'broken.pdf'}: ") and "(since 20" in listing.out[7]
    assert listing.out[8] == "index: 4 documents, 4 chunks in 2 roots"

    # --remove: a folder inside a root, its files deleted (tests/test_index_exclude.py: still there), then
    # a root by name (forgotten, so a plain run leaves it out).
    parking = (wh / "people/parking.md").read_text()
    (wh / "people/parking.md").unlink()
    removed = index(capsys, "--remove", "wh/people")
    assert removed.code == 0 and removed.out == [
        "removed: people/parking.md",
        "removed 1 document | index: 3 documents, 3 chunks",
    ]
    gone = index(capsys, "--remove", "handbook")
    assert gone.out[0] == "note: root 'handbook' forgotten: `qwenbot index` no longer reads it"
    assert indexed_paths(tmp_path) == ["hr/vacation.md", "safety/forklift-certification.md"]
    nothing = index(capsys, "--remove", "wh/no-such-folder")
    assert nothing.code == 1 and nothing.err[0].startswith("error: wh/no-such-folder: nothing indexed there")
    # A file put back is indexed by the next run; handbook stays out.
    (wh / "people/parking.md").write_text(parking)
    assert ": 1 added," in index(capsys).out[-1]
    assert index(capsys, "--list").out[-1] == "index: 3 documents, 3 chunks in 1 root"

    # --prune: documents whose files are gone, without indexing anything else.
    (wh / "hr/vacation.md").unlink()
    (wh / "broken.pdf").unlink()
    (wh / "people/new.md").write_text("# New\n\nNot indexed by a prune.\n")
    pruned = index(capsys, "--prune")
    assert pruned.code == 0 and pruned.out == [
        "removed: hr/vacation.md",
        "removed 1 document | index: 2 documents, 2 chunks",
    ]
    assert indexed_paths(tmp_path) == ["people/parking.md", "safety/forklift-certification.md"]
    assert "failed files: 0" in index(capsys, "--list").out

    contradiction = index(capsys, "--prune", "--list")
    assert contradiction.code == 2 and contradiction.err == [
        "error: --list and --prune cannot be combined: run them one after the other"
    ]


def test_a_rename_is_shown_as_a_rename_and_costs_no_embedding(
    wh: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert index(capsys).code == 0
    (wh / "people/parking.md").rename(wh / "people/car-parking.md")
    result = index(capsys)
    assert result.out[0] == "renamed: people/parking.md -> people/car-parking.md"
    assert result.out[-1].startswith(
        "this run: 3 files: 0 added, 0 updated, 1 renamed, 2 unchanged, 0 skipped, 0 failed; 0 removed | "
        "0 chunks embedded, 1 reused, "
    )
    assert result.out[-1].endswith(" | index: 3 documents, 3 chunks")
    assert "people/car-parking.md" in indexed_paths(tmp_path) and "people/parking.md" not in indexed_paths(tmp_path)


def test_summary_names_failed_and_skipped_files_then_counts_the_rest(
    wh: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for n in range(7):
        (wh / f"photo{n}.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (wh / "broken.pdf").write_bytes(BROKEN_PDF)
    (wh / ".hidden.md").write_text("# Hidden\n")  # hidden files are not documents: not even named
    result = index(capsys, progress=True)
    assert result.code == 1
    skipped = [line for line in result.out if line.startswith("skipped: ")]
    assert skipped[:5] == [f"skipped: wh/photo{n}.png: unsupported file type (.png)" for n in range(5)]
    assert skipped[5:] == ["skipped: … and 2 more"]
    assert result.out[-1].startswith(
        "this run: 11 files: 3 added, 0 updated, 0 renamed, 0 unchanged, 7 skipped, 1 failed; 0 removed | "
    )
    errors = [line for line in result.err if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith("error: wh/broken.pdf: ")
    # The progress bar counts as it goes (tqdm redraws with \r: the last drawing holds the totals).
    bar = "\n".join(result.err).split("\r")
    assert any("3 new, 0 changed, 0 unchanged, 1 failed" in part for part in bar)


def test_exit_codes_old_unchanged_failure_new_failure_and_strict(
    wh: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (wh / "broken.pdf").write_bytes(BROKEN_PDF)
    first = index(capsys)
    assert first.code == 1 and ", 1 failed;" in first.out[-1]
    # Nobody touched it: named again, but the run is not a failure (a cron job stays green)...
    second = index(capsys)
    assert second.code == 0
    assert second.err[0].startswith("error: wh/broken.pdf: ") and second.err[0].endswith(
        " (already failing, file unchanged)"
    )
    assert ", 1 failed (1 already failing, unchanged);" in second.out[-1]
    assert index(capsys, "wh/broken.pdf").code == 0
    # ...unless --strict (CI holding the corpus clean).
    assert index(capsys, "--strict").code == 1
    # A new failure fails the run: another broken file, or the same one changed and still broken.
    (wh / "also-broken.pdf").write_bytes(BROKEN_PDF + b" 2")
    assert index(capsys).code == 1
    (wh / "broken.pdf").write_bytes(BROKEN_PDF + b" edited")
    assert index(capsys).code == 1
    assert index(capsys).code == 0
    # Fixed or deleted: forgotten.
    (wh / "broken.pdf").unlink()
    (wh / "also-broken.pdf").unlink()
    assert index(capsys).code == 0
    assert "failed files: 0" in index(capsys, "--list").out


def test_a_new_docs_folder_replaces_the_old_one(
    wh: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], write_doc, no_settings: pytest.MonkeyPatch
) -> None:
    write_doc(
        tmp_path / "old",
        "hr/vacation.md",
        "Vacation",
        {"Days": "Office staff get 25 vacation days."},
        url="https://old.example/v",
    )
    write_doc(tmp_path / "old", "hr/expenses.md", "Expenses", {"When": "Submit expenses within 30 days."})
    no_settings.setenv("QWENBOT_DOCS_DIR", "old")
    assert index(capsys).code == 0
    no_settings.setenv("QWENBOT_DOCS_DIR", "wh")
    # Before the next run, --list says what the index still holds and what happens next.
    listing = index(capsys, "--list")
    assert listing.out[0].startswith(f"QWENBOT_DOCS_DIR: {wh}: 2 documents")
    assert f"those documents are from {tmp_path / 'old'}, the folder indexed before" in listing.out[0]
    # Even a run of one file indexes the new folder in full, and the old folder's documents go.
    result = index(capsys, "wh/people/parking.md")
    assert result.code == 0
    assert result.out[0] == (
        f"note: QWENBOT_DOCS_DIR is now {wh} (was {tmp_path / 'old'}): indexed the new folder in full; "
        "documents that were only in the old one are removed"
    )
    removed = [line for line in result.out if line.startswith("removed: ")]
    assert removed == ["removed: hr/expenses.md"]  # hr/vacation.md is in both: updated
    assert ": 2 added, 1 updated," in result.out[-1] and "; 1 removed |" in result.out[-1]
    assert indexed_paths(tmp_path) == WH_PATHS
    # The updated document carries nothing of the old one: no url its new front matter lacks.
    metas = open_collection(IndexConfig(index_dir=tmp_path / "index")).get(include=["metadatas"])["metadatas"]
    vacation = [m for m in metas if m["path"] == "hr/vacation.md"]
    assert vacation and all("url" not in m and m["title"] == "Vacation" for m in vacation)


def test_an_index_from_before_roots_is_adopted_without_embedding(
    wh: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], embedder
) -> None:
    """A v1 manifest, with the twin `qwenbot index wh/people/parking.md` used to make (key `parking.md`,
    root the file's folder): the next run drops the twin and embeds nothing."""
    config = IndexConfig(index_dir=tmp_path / "index")
    Indexer(config, embedder, docs_dir=wh).run([], progress=False)
    collection = open_collection(config)
    real = collection.get(where={"path": "people/parking.md"}, include=["embeddings", "documents", "metadatas"])
    twin_ids = [cid.replace(cid.split("-")[0], "twin") for cid in real["ids"]]
    collection.upsert(
        ids=twin_ids,
        embeddings=real["embeddings"],
        documents=real["documents"],
        metadatas=[{**m, "path": "parking.md", "root": str(wh / "people")} for m in real["metadatas"]],
    )
    manifest_path = tmp_path / "index" / "manifest.json"
    raw = json.loads(manifest_path.read_text())
    files = {key: {**entry, "root": str(wh)} for key, entry in raw["files"].items()}
    files["parking.md"] = {**files["people/parking.md"], "root": str(wh / "people"), "chunk_ids": twin_ids}
    manifest_path.write_text(json.dumps({"version": 1, "embedding_model": raw["embedding_model"], "files": files}))
    assert indexed_paths(tmp_path) == sorted([*WH_PATHS, "parking.md"])

    result = index(capsys)
    assert result.code == 0
    assert result.out[0] == "note: the index predates roots: 4 documents moved into roots"
    assert "removed: parking.md" in result.out
    assert result.out[-1].startswith("this run: 3 files: 0 added, 0 updated, 0 renamed, 3 unchanged")
    assert "0 chunks embedded, 0 reused" in result.out[-1]
    assert indexed_paths(tmp_path) == WH_PATHS
    assert json.loads(manifest_path.read_text())["version"] == 2

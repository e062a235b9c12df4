"""The incremental indexer against a real Chroma folder and the real embedding model."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot import cli
from retrieval.chunking import chunk_document
from retrieval.config import IndexConfig
from retrieval.errors import IndexLockedError, ModelMismatchError
from retrieval.indexer import Indexer, format_summary
from retrieval.lexical import LexicalIndex, saved_stamp
from retrieval.loaders import load_document
from retrieval.manifest import load_manifest
from retrieval.models import IndexStats
from retrieval.store import acquire_index_lock, iter_collection, open_collection, read_stamp

REPO = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False"}


def collection_ids(config: IndexConfig) -> list[str]:
    return [cid for page in iter_collection(open_collection(config), []) for cid in page["ids"]]


def expected_ids(folder: Path, embedder) -> set[str]:
    """The chunk ids a clean index of `folder` holds, computed without the indexer."""
    ids: set[str] = set()
    for path in folder.rglob("*"):
        if path.is_file():
            rel = path.relative_to(folder).as_posix()
            ids.update(c.id for c in chunk_document(load_document(path, rel), embedder, 200, 40))
    return ids


def assert_consistent(config: IndexConfig, folder: Path, embedder) -> None:
    """No duplicates, no orphans, nothing missing; manifest and BM25 agree with the collection."""
    ids = collection_ids(config)
    assert len(ids) == len(set(ids))
    assert set(ids) == expected_ids(folder, embedder)
    manifest = load_manifest(config.index_dir / "manifest.json")
    assert manifest is not None and manifest.expected_ids() == set(ids)
    lexical = LexicalIndex.load(config.index_dir / "bm25")
    assert lexical is not None and sorted(lexical.ids) == sorted(ids)


@pytest.fixture
def config(tmp_path: Path) -> IndexConfig:
    return IndexConfig(index_dir=tmp_path / "index")


def test_incremental_add_edit_rename_delete(tmp_path: Path, config: IndexConfig, embedder, write_doc) -> None:
    docs = tmp_path / "docs"
    write_doc(
        docs,
        "hr/leave.md",
        "Leave policy",
        {
            "Vacation": "Everyone gets 25 vacation days per calendar year.",
            "Sick leave": "Sick days are unlimited; tell your manager by 10am.",
            "Parental leave": "Parents get 20 weeks of paid parental leave.",
        },
        tags=("hr", "leave"),
    )
    write_doc(
        docs,
        "eng/deploy.md",
        "Deploying",
        {
            "Rollback": "Run `shipit rollback` to return to the previous release.",
            "Freeze": "No deploys on Fridays after 3pm.",
        },
    )
    (docs / "notes.txt").write_text("Office notes\n\nThe espresso machine is on floor 3.\n", encoding="utf-8")

    first = Indexer(config, embedder).run([docs], progress=False)
    assert (first.added, first.updated, first.removed, first.unchanged, first.failed) == (3, 0, 0, 0, 0)
    assert first.chunks_embedded == first.chunks_total > 0 and first.chunks_reused == 0
    assert_consistent(config, docs, embedder)

    again = Indexer(config, embedder).run([docs], progress=False)
    assert (again.unchanged, again.added, again.updated, again.removed) == (3, 0, 0, 0)
    assert again.chunks_embedded == 0 and again.chunks_reused == 0
    assert again.chunks_total == first.chunks_total

    # One paragraph edited: only the chunk holding it is embedded again.
    write_doc(
        docs,
        "hr/leave.md",
        "Leave policy",
        {
            "Vacation": "Everyone gets 25 vacation days per calendar year.",
            "Sick leave": "Sick days are unlimited; tell your manager before 9am.",
            "Parental leave": "Parents get 20 weeks of paid parental leave.",
        },
        tags=("hr", "leave"),
    )
    edited = Indexer(config, embedder).run([docs], progress=False)
    assert (edited.updated, edited.unchanged) == (1, 2)
    assert edited.chunks_embedded == 1 and edited.chunks_reused == 2
    assert_consistent(config, docs, embedder)

    # A rename costs no embedding: same text, new path; the old path's chunks are gone.
    (docs / "eng/deploy.md").rename(docs / "eng/deploying.md")
    renamed = Indexer(config, embedder).run([docs], progress=False)
    assert (renamed.renamed, renamed.added, renamed.removed, renamed.unchanged) == (1, 0, 0, 2)
    assert renamed.renames == [("eng/deploy.md", "eng/deploying.md")]
    assert renamed.chunks_embedded == 0 and renamed.chunks_reused > 0
    assert_consistent(config, docs, embedder)

    (docs / "notes.txt").unlink()
    deleted = Indexer(config, embedder).run([docs], progress=False)
    assert (deleted.removed, deleted.unchanged, deleted.chunks_embedded) == (1, 2, 0)
    assert_consistent(config, docs, embedder)
    metas = open_collection(config).get(include=["metadatas"])["metadatas"]
    assert {m["path"] for m in metas} == {"hr/leave.md", "eng/deploying.md"}
    leave = [m for m in metas if m["path"] == "hr/leave.md"]
    assert all(m["tags"] == ",hr,leave," and m["title"] == "Leave policy" for m in leave)
    assert {m["heading_path"] for m in leave} == {"Vacation", "Sick leave", "Parental leave"}


def test_single_file_and_named_roots(tmp_path: Path, config: IndexConfig, embedder, write_doc) -> None:
    one = write_doc(tmp_path / "a", "guide.md", "Guide", {"Intro": "Read the guide first."})
    write_doc(tmp_path / "b", "faq.md", "FAQ", {"Q": "Ask in #help."})
    indexer = Indexer(config, embedder, docs_dir=tmp_path / "a")
    assert indexer.run([one], progress=False).added == 1
    assert indexer.run([tmp_path / "b"], progress=False, add_root="b").added == 1
    manifest = load_manifest(config.index_dir / "manifest.json")
    assert manifest is not None and set(manifest.files) == {"guide.md", "b/faq.md"}
    # Indexing only root b does not remove what root a holds; removing b's file does remove it.
    (tmp_path / "b" / "faq.md").unlink()
    stats = indexer.run([tmp_path / "b"], progress=False)
    assert stats.removed == 1
    manifest = load_manifest(config.index_dir / "manifest.json")
    assert manifest is not None and set(manifest.files) == {"guide.md"}
    # A PATH that does not exist is an error and removes nothing.
    stats = indexer.run([tmp_path / "a-typo"], progress=False)
    assert stats.failed == 1 and stats.removed == 0 and "no such file or folder" in stats.errors[0]
    assert len(collection_ids(config)) == 1


def test_skips_and_failures_are_counted_and_set_the_exit_code(
    tmp_path: Path, embedder, write_doc, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = tmp_path / "docs"
    write_doc(docs, "ok.md", "Fine", {"Body": "A perfectly fine document."})
    (docs / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    (docs / "data.bin").write_bytes(bytes(range(256)))
    monkeypatch.setenv("QWENBOT_INDEX_DIR", str(tmp_path / "index"))
    monkeypatch.setenv("QWENBOT_DOCS_DIR", str(docs))
    env_file = os.devnull

    assert cli.main(["--env-file", env_file, "index", str(docs), "--no-progress"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1].startswith("this run: 3 files: 1 added, 0 updated, 0 renamed, 0 unchanged, 2 skipped, 0 failed; ")

    (docs / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    (docs / "binary.md").write_bytes(b"\x00\x01\x02\xff\xfe\x00" * 50)
    assert cli.main(["--env-file", env_file, "index", str(docs), "--no-progress"]) == 1
    captured = capsys.readouterr()
    assert "1 unchanged, 2 skipped, 2 failed;" in captured.out
    errors = captured.err.strip().splitlines()
    assert any(line.startswith(f"error: {docs / 'broken.pdf'}: ") for line in errors)
    assert any(line.startswith(f"error: {docs / 'binary.md'}: ") for line in errors)


def test_summary_line_format() -> None:
    stats = IndexStats(3, 1, 2, 40, 2, 2, chunks_embedded=12, chunks_reused=4, chunks_total=120, seconds=3.2)
    stats.renamed, stats.failed_new, stats.documents = 1, 1, 44
    assert format_summary(stats) == (
        "this run: 49 files: 3 added, 1 updated, 1 renamed, 40 unchanged, 2 skipped, 2 failed "
        "(1 already failing, unchanged); 2 removed | 12 chunks embedded, 4 reused, 3.2 s | "
        "index: 44 documents, 120 chunks"
    )


def test_other_embedding_model_is_refused(tmp_path: Path, config: IndexConfig, embedder, write_doc) -> None:
    docs = tmp_path / "docs"
    write_doc(docs, "a.md", "A", {"S": "Some text."})
    Indexer(config, embedder).run([docs], progress=False)
    other = IndexConfig(index_dir=config.index_dir, embedding_model="sentence-transformers/all-mpnet-base-v2")
    with pytest.raises(ModelMismatchError, match="QWENBOT_INDEX_DIR"):
        Indexer(other).run([docs], progress=False)


def test_lock_refuses_a_second_process(
    tmp_path: Path,
    config: IndexConfig,
    embedder,
    write_doc,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    docs = tmp_path / "docs"
    write_doc(docs, "a.md", "A", {"S": "Some text."})
    # Within one process the lock is re-entrant: the bot holds it and indexes in-process.
    with acquire_index_lock(config):
        assert Indexer(config, embedder).run([docs], progress=False).added == 1

    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from retrieval.config import IndexConfig; "
            "from retrieval.store import acquire_index_lock; "
            "lock = acquire_index_lock(IndexConfig(index_dir=Path(sys.argv[1]))); print('held', flush=True); "
            "time.sleep(60)",
            str(config.index_dir),
        ],
        cwd=REPO,
        env=ENV,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(IndexLockedError, match=f"pid {holder.pid}"):
            Indexer(config, embedder).run([docs], progress=False)
        monkeypatch.setenv("QWENBOT_INDEX_DIR", str(config.index_dir))
        monkeypatch.setenv("QWENBOT_DOCS_DIR", str(docs))
        assert cli.main(["--env-file", os.devnull, "index", str(docs), "--no-progress"]) == 1
        err = capsys.readouterr().err
        assert f"process {holder.pid}" in err  # the holder is named (bot/indexing/start.py words the rest)
    finally:
        holder.kill()
        holder.wait()
    # Once the holder is gone the lock is free again (the kernel drops it with the process).
    assert Indexer(config, embedder).run([docs], progress=False).unchanged == 1


@pytest.mark.slow
def test_kill_9_mid_index_then_rerun_is_consistent(tmp_path: Path, config: IndexConfig, embedder) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    topics = ["billing", "backups", "laptops", "travel", "security", "hiring"]
    for i in range(60):
        topic = topics[i % len(topics)]
        (docs / f"{topic}-{i:02d}.md").write_text(
            f"---\ntitle: {topic.title()} note {i}\n---\n\n## Summary\n\nNote {i} about {topic}: step {i} of the "
            f"{topic} procedure.\n\n## Details\n\nFor {topic} case {i}, ask the {topic} team in #{topic}-{i}.\n",
            encoding="utf-8",
        )
    manifest = config.index_dir / "manifest.json"
    # Small batches so that the run writes in many steps; it is killed once the first step is recorded.
    env = {
        **ENV,
        "QWENBOT_INDEX_DIR": str(config.index_dir),
        "QWENBOT_DOCS_DIR": str(docs),
        "QWENBOT_EMBEDDING_BATCH_SIZE": "1",  # a write every 64 chunks: the 120 chunks make two
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bot.cli",
            "--env-file",
            os.devnull,
            "index",
            str(docs),
            "--no-progress",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while not manifest.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert proc.poll() is None, f"indexer ended before it could be killed: {proc.stderr and proc.stderr.read()!r}"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    partial = load_manifest(manifest)
    assert partial is not None and 0 < len(partial.files) < 60

    rerun = Indexer(config, embedder).run([docs], progress=False)
    assert rerun.failed == 0
    assert rerun.unchanged == len(partial.files) and rerun.added == 60 - len(partial.files)
    assert_consistent(config, docs, embedder)


def test_a_run_killed_after_writing_makes_the_next_one_refresh_bm25(
    tmp_path: Path, config: IndexConfig, embedder, write_doc
) -> None:
    docs = tmp_path / "docs"
    write_doc(docs, "a.md", "A", {"S": "Some text."})
    Indexer(config, embedder).run([docs], progress=False)
    before = read_stamp(open_collection(config).metadata or {}).value
    assert before and saved_stamp(config.index_dir / "bm25") == before
    assert not (config.index_dir / ".dirty").exists()
    # What a run killed between its writes and its final BM25 rebuild leaves behind: the marker.
    (config.index_dir / ".dirty").touch()
    stats = Indexer(config, embedder).run([docs], progress=False)
    assert stats.unchanged == 1 and stats.chunks_embedded == 0
    after = read_stamp(open_collection(config).metadata or {}).value
    assert after != before and saved_stamp(config.index_dir / "bm25") == after
    assert not (config.index_dir / ".dirty").exists()

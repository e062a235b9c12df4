"""One indexing job (`qwenbot index`: index, --list, --remove, --prune), Slack-free and printed line by
line, so the CLI and a running bot run the same job and show the admin the same lines.

Exit status: 0 when this run hit no new failure; 1 when a file failed that had not failed the same way,
unchanged, in an earlier run (or any file failed, with `strict`), or the request could not be done; 2
for a request that contradicts itself. A broken file nobody touched keeps being named, but stops failing
every later run: fix it, remove it, or use --strict in CI to be held to a clean corpus.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bot.errors import QwenbotError, exit_code, user_message
from retrieval.config import IndexConfig
from retrieval.errors import RetrievalError
from retrieval.indexer import DocumentListing, Indexer, IndexListing, format_summary
from retrieval.manifest import DEFAULT_ROOT
from retrieval.models import IndexStats

ERROR = "error: "  # lines for stderr start with this
SHOWN = 5  # files named per kind (failed, skipped, renamed, removed) before "and N more"


@dataclass
class IndexRequest:
    paths: list[Path] = field(default_factory=list)  # none: every root
    list_only: bool = False
    remove: list[str] = field(default_factory=list)  # paths, root names or document paths
    prune: bool = False
    strict: bool = False  # any failure, not only a new one, exits 1
    add_root: str | None = None  # index the one PATH as a root of this name
    move_root: bool = False  # a source's mirror: the root add_root may be recorded at another replica's folder

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> IndexRequest:
        return cls(list(args.paths), args.list, list(args.remove), args.prune, args.strict, args.add_root)

    def contradiction(self) -> str | None:
        """Why the request cannot be done as a whole, or None."""
        actions = [
            name for name, on in (("--list", self.list_only), ("--remove", self.remove), ("--prune", self.prune)) if on
        ]
        if len(actions) > 1:
            return f"{' and '.join(actions)} cannot be combined: run them one after the other"
        if actions and (self.paths or self.add_root):
            return f"{actions[0]} takes no PATH or --add-root (--remove takes its targets itself)"
        if self.add_root is not None and len(self.paths) != 1:
            return "--add-root NAME takes exactly one PATH, the folder to index as that root"
        return None


def run_index_job(
    config: IndexConfig,
    docs_dir: Path,
    request: IndexRequest,
    out: Callable[[str], None],
    *,
    progress: bool,
    indexer: Indexer | None = None,
    done: Callable[[IndexStats], None] | None = None,
) -> int:
    """Does the job, writes every line for the admin through `out` (errors start with ERROR) and
    returns the exit status: the job of the index `config` over the docs folder `docs_dir`. `indexer`:
    one already open in this process (the bot's), with this config and `docs_dir`. `done` gets what an
    index, remove or prune job did."""
    contradiction = request.contradiction()
    if contradiction:
        out(ERROR + contradiction)
        return 2
    indexer = indexer or Indexer(config, docs_dir=docs_dir)
    try:
        if request.list_only:
            _listing(indexer.listing(), out)
            return 0
        if request.remove or request.prune:
            stats = indexer.remove(request.remove) if request.remove else indexer.prune()
            _removal(stats, out)
        else:
            stats = indexer.run(
                request.paths, progress=progress, add_root=request.add_root, move_root=request.move_root
            )
            _run_report(stats, out)
    except (QwenbotError, RetrievalError) as exc:
        out(ERROR + user_message(exc))
        return exit_code(exc)
    if done is not None:
        done(stats)
    return 1 if stats.failed_new or (request.strict and stats.failed) else 0


def job_counts(stats: IndexStats) -> str:
    """What a job did, in one line of counts for the bot's log (names no file, quotes no text)."""
    return (
        f"{stats.added} added, {stats.updated} updated, {stats.renamed} renamed, {stats.removed} removed, "
        f"{stats.failed} failed ({stats.failed_new} new), {stats.skipped} skipped, {stats.unchanged} unchanged, "
        f"{stats.seconds:.1f} s; index: {stats.documents} documents, {stats.chunks_total} chunks"
    )


def _run_report(stats: IndexStats, out: Callable[[str], None]) -> None:
    for note in stats.notes:
        out(f"note: {note}")
    _capped([f"renamed: {old} -> {new}" for old, new in stats.renames], "renamed", out)
    _capped([f"removed: {key}" for key in stats.removals], "removed", out)
    failed = sorted((p for p in stats.problems if not p.skipped), key=lambda p: not p.new)  # new ones first
    _capped(
        [ERROR + p.line + ("" if p.new else " (already failing, file unchanged)") for p in failed],
        ERROR + "failed",
        out,
        " (`qwenbot index --list` names every failed file)",
    )
    _capped(["skipped: " + p.line.replace(": skipped: ", ": ", 1) for p in stats.problems if p.skipped], "skipped", out)
    out(format_summary(stats))


def _capped(lines: list[str], label: str, out: Callable[[str], None], hint: str = "") -> None:
    for line in lines[:SHOWN]:
        out(line)
    if len(lines) > SHOWN:
        out(f"{label}: … and {len(lines) - SHOWN} more{hint}")


def _removal(stats: IndexStats, out: Callable[[str], None]) -> None:
    for note in stats.notes:
        out(f"note: {note}")
    _capped([f"removed: {key}" for key in stats.removals], "removed", out)
    removed = f"{stats.removed} document{'' if stats.removed == 1 else 's'}"
    out(f"removed {removed} | index: {stats.documents} documents, {stats.chunks_total} chunks")


def _when(iso: str | None) -> str:
    if iso is None:
        return "never indexed"
    return "last indexed " + dt.datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M UTC")


def _listing(listing: IndexListing, out: Callable[[str], None]) -> None:
    if not listing.roots:
        out("no roots yet: set QWENBOT_DOCS_DIR and run `qwenbot index`")
    for root in listing.roots:
        name = "QWENBOT_DOCS_DIR" if root.name == DEFAULT_ROOT else f"root {root.name!r}"
        line = f"{name}: {root.path}: {len(root.documents)} documents, {root.chunks} chunks, {_when(root.indexed_at)}"
        if root.indexed_path is not None:
            line += (
                f"; those documents are from {root.indexed_path}, the folder indexed before: the next "
                "`qwenbot index` indexes the new folder and removes the old folder's documents"
            )
        elif not root.exists:
            line += "; the folder is missing: `qwenbot index --prune` removes its documents"
        out(line)
        if root.excluded:
            out(f"  excluded: {'; '.join(root.excluded)}")
        for doc in root.documents:
            out(f"  {doc.key}: {_document(doc)}")
    failures = sorted(listing.failures.items())
    out(f"failed files: {len(failures)}")
    for _key, failure in failures:
        out(f"  {failure.path}: {failure.reason} (since {failure.since[:10]})")
    documents = sum(len(r.documents) for r in listing.roots)
    chunks = sum(r.chunks for r in listing.roots)
    roots = len(listing.roots)
    out(f"index: {documents} documents, {chunks} chunks in {roots} root{'' if roots == 1 else 's'}")


def _document(doc: DocumentListing) -> str:
    """A document's line after its key. The title is the document's own text: JSON-quoted, so that no
    control character in it reaches the terminal."""
    title = json.dumps(doc.title) if doc.title is not None else "(title not recorded yet: run `qwenbot index`)"
    parts = [title, f"{doc.chunks} chunk{'' if doc.chunks == 1 else 's'}"]
    if doc.updated:
        parts.append(f"updated {doc.updated}")
    if doc.indexed_at:
        parts.append(f"indexed {doc.indexed_at[:10]}")
    return ", ".join(parts)

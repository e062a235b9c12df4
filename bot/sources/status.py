"""What `qwenbot sources` and `/qwenbot status` show of each source: name, type, documents, last
successful sync, next sync and the last error in one line; the docs folder first, as `docs (folder)`.
Read from the shared state and the index manifest, so a terminal shows it beside a running bot."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bot.state.sources import SourceStatus
from bot.text import short
from retrieval.indexer import IndexListing
from retrieval.manifest import DEFAULT_ROOT
from retrieval.sources.spec import SourceSpec

HEADER = ("name", "type", "documents", "last successful sync", "next sync", "last error")
_ERROR_SHOWN = 160  # characters of the last error in a row


@dataclass(frozen=True)
class SourceRow:
    name: str
    kind: str
    documents: int
    last_success: str
    next_sync: str
    last_error: str  # "" when the last attempt succeeded


def docs_row(listing: IndexListing, reindex_interval_minutes: float, watch_docs: bool) -> SourceRow:
    """The docs folder (QWENBOT_DOCS_DIR), as the index manifest has it."""
    root = next((r for r in listing.roots if r.name == DEFAULT_ROOT), None)
    if watch_docs:
        next_sync = "on change (watched)"
    elif reindex_interval_minutes > 0:
        next_sync = f"every {reindex_interval_minutes:g} min"
    else:
        next_sync = "on `qwenbot index`"
    indexed = _when_iso(root.indexed_at) if root is not None else "never"
    missing = "" if root is None or root.exists else f"the folder {root.path} is missing"
    return SourceRow("docs", "folder", len(root.documents) if root else 0, indexed, next_sync, missing)


def source_rows(
    specs: Sequence[SourceSpec], statuses: Iterable[SourceStatus], now: float | None = None
) -> list[SourceRow]:
    """One row per configured source, in the sources file's order."""
    by_name = {s.source: s for s in statuses}
    at = time.time() if now is None else now
    rows = []
    for spec in specs:
        status = by_name.get(spec.name, SourceStatus(spec.name))
        if status.next_due is None:
            next_sync = "as soon as the bot runs"
        else:
            next_sync = "due now" if status.next_due <= at else _when(status.next_due)
        error = short(status.last_error or "", _ERROR_SHOWN)
        if error and status.failures > 1:
            error = f"{error} ({status.failures} failures in a row)"
        last = _when(status.last_success) if status.last_success else "never"
        rows.append(SourceRow(spec.name, spec.kind, status.documents, last, next_sync, error))
    return rows


def table(rows: Sequence[SourceRow]) -> list[str]:
    """Aligned columns for the terminal; the error column last, as long as it is."""
    cells = [HEADER] + [
        (r.name, r.kind, str(r.documents), r.last_success, r.next_sync, r.last_error or "-") for r in rows
    ]
    widths = [max(len(c[i]) for c in cells) for i in range(len(HEADER) - 1)]
    return ["  ".join([*(c[i].ljust(widths[i]) for i in range(len(widths))), c[-1]]).rstrip() for c in cells]


def summary(rows: Sequence[SourceRow]) -> list[str]:
    """One line per source for `/qwenbot status` (plain text: the caller makes it inert for Slack)."""
    lines = []
    for r in rows:
        line = f"{r.name} ({r.kind}): {r.documents:,} documents, last synced {r.last_success}, next {r.next_sync}"
        lines.append(line + (f"; last error: {r.last_error}" if r.last_error else ""))
    return lines


def _when(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _when_iso(iso: str | None) -> str:
    if not iso:
        return "never"
    try:
        return dt.datetime.fromisoformat(iso).astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return iso

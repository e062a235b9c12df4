"""The sources beyond the docs folder (bot/sources/) as list_sources shows them: each one's type,
documents, last successful sync and next sync, read from the shared bot state at each call (any
replica records them). Never the last error's text: it may name internal hosts; `ok` says whether
the last sync worked."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from bot.config import StateConfig
from bot.mcp.tools import SourceInfo
from bot.sources.status import source_rows
from bot.state import State
from retrieval.sources.spec import SourceSpec


def sources_reader(specs: Sequence[SourceSpec], state: StateConfig) -> Callable[[], list[SourceInfo]]:
    """What list_sources calls for the configured sources' status (`specs`: the sources file's, read once
    at start: a bad one stops the server with its one line)."""

    def read() -> list[SourceInfo]:
        if not specs:
            return []
        statuses = []
        if State.missing(state) is None:
            db = State.from_config(state)
            try:
                statuses = db.sources.all_status()
            finally:
                db.close()
        rows = source_rows(specs, statuses)
        return [SourceInfo(r.name, r.kind, r.documents, r.last_success, r.next_sync, not r.last_error) for r in rows]

    return read

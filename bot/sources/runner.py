"""Syncing the configured sources: one sync at a time across replicas, each source on its interval,
failures backed off and recorded, none of it in the way of answering.

A sync holds the shared lock the bot's re-index holds ("reindex": an advisory lock in PostgreSQL, a
lock file beside SQLite), so across replicas one indexes at a time and a replica that dies lets go.
Inside it the source's status is read again: whichever replica's turn came first has moved `next_due`
on, so each due sync runs once. The index step runs through `index_root` (the bot's: under its index
job lock, the searcher refreshed before it returns).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.config import SourcesConfig
from bot.errors import QwenbotError, UsageError, user_message
from bot.indexing.control import Handler, Send
from bot.indexing.job import ERROR
from bot.sources import status
from bot.state import State
from retrieval.errors import RetrievalError, SourceRateLimitedError
from retrieval.models import IndexStats
from retrieval.sources.registry import connector_for
from retrieval.sources.spec import SourceSpec
from retrieval.sources.sync import SourceSync, SyncReport

log = logging.getLogger(__name__)

LOCK = "reindex"  # the bot's re-index lock (bot/indexing/service.py): one index job across replicas
BACKOFF_FIRST = 60.0  # seconds before the first retry of a failed sync (less when the interval is shorter)
BACKOFF_CAP = 8  # a failing source is tried at least every this many intervals
MANUAL_WAIT = 600.0  # seconds `qwenbot sync` waits for another replica's index job to end
_TICK_MAX = 30.0  # seconds between the schedule's looks at what is due

# name, its mirror folder, why (for the log) -> what the index job did; raises when it could not run
IndexRoot = Callable[[str, Path, str], IndexStats]
# name -> its root's documents taken out of the index; raises when they could not be
RemoveRoot = Callable[[str], None]


def next_due(spec: SourceSpec, failures: int, retry_after: float | None, now: float) -> float:
    """When to sync next: an interval after a success; after failures, sooner and then exponentially
    later (capped at BACKOFF_CAP intervals), never before the source's Retry-After."""
    interval = spec.interval_minutes * 60
    if failures <= 0:
        return now + interval
    delay = min(min(interval, BACKOFF_FIRST) * 2.0 ** (failures - 1), interval * BACKOFF_CAP)
    return now + max(delay, retry_after or 0.0)


@dataclass(frozen=True)
class SyncOutcome:
    """One sync, as the commands show it: `line` says what it did or why it failed (one line, no secret)."""

    source: str
    ok: bool
    line: str
    notes: list[str] = field(default_factory=list)


class SourceRunner:
    """Syncs the sources `specs` into their mirrors under `config.sources_dir`, indexing each through
    `index_root`, remembering them in `state.sources`."""

    def __init__(
        self,
        config: SourcesConfig,
        specs: Sequence[SourceSpec],
        state: State,
        index_root: IndexRoot,
        remove_root: RemoveRoot | None = None,
    ) -> None:
        self.config = config
        self.specs = {spec.name: spec for spec in specs}
        self.state = state
        self.index_root = index_root
        self.remove_root = remove_root

    def mirror(self, name: str) -> Path:
        return self.config.sources_dir / name / "mirror"

    def select(self, name: str | None) -> list[SourceSpec]:
        """Every source (None), or the one named; UsageError naming the known ones otherwise."""
        if name is None:
            return list(self.specs.values())
        if name not in self.specs:
            raise UsageError(unknown_source(name, list(self.specs)))
        return [self.specs[name]]

    def sync(self, spec: SourceSpec, why: str, wait: float = 0.0, only_if_due: bool = False) -> SyncOutcome | None:
        """Syncs `spec` once the shared lock is free (waiting up to `wait` seconds). None: not run (another
        replica holds the lock, or with `only_if_due`, synced it meanwhile)."""
        with self._locked(wait) as held:
            if not held:
                return None
            if only_if_due and not self._due(spec, time.time()):
                return None
            return self._sync(spec, why)

    def _sync(self, spec: SourceSpec, why: str) -> SyncOutcome:
        failures = self.state.sources.status(spec.name).failures
        try:
            connector = connector_for(spec, self.config.sources_dir / spec.name / "work")
            sync = SourceSync(spec, connector, self.state.sources, self.mirror(spec.name))
            report = sync.run(lambda mirror: self.index_root(spec.name, mirror, f"source {spec.name}, {why}"))
        except (QwenbotError, RetrievalError) as exc:  # SourceError's text names the source, never a secret
            retry = exc.retry_after if isinstance(exc, SourceRateLimitedError) else None
            return self._failed(spec, user_message(exc), failures + 1, retry)
        except Exception as exc:  # a connector's bug: logged without its text, which could hold anything
            log.error("source %s: the sync failed unexpectedly (%s)", spec.name, type(exc).__name__)
            line = f"source {spec.name!r} ({spec.kind}): the sync failed unexpectedly ({type(exc).__name__})"
            return self._failed(spec, line, failures + 1, None)
        self.state.sources.record_success(spec.name, next_due(spec, 0, None, time.time()))
        line = f"{spec.name} ({spec.kind}): {report_line(report)}"
        log.info("source sync (%s): %s", why, line)
        return SyncOutcome(spec.name, True, line, list(report.notes))

    def _failed(self, spec: SourceSpec, line: str, failures: int, retry_after: float | None) -> SyncOutcome:
        due = next_due(spec, failures, retry_after, time.time())
        self.state.sources.record_failure(spec.name, line, due)
        log.warning("source sync failed (attempt %d, next in %.0f s): %s", failures, due - time.time(), line)
        return SyncOutcome(spec.name, False, line)

    def _due(self, spec: SourceSpec, now: float) -> bool:
        due = self.state.sources.status(spec.name).next_due
        return due is None or due <= now

    @contextmanager
    def _locked(self, wait: float) -> Iterator[bool]:
        deadline = time.monotonic() + wait
        while True:
            with self.state.exclusive(LOCK) as held:
                if held or time.monotonic() >= deadline:
                    yield held
                    return
            time.sleep(1.0)

    # --- the schedule, and the requests of the commands --------------------------------------------

    def drop_removed(self) -> None:
        """Sources the shared state knows that the sources file no longer lists: their documents leave
        the index (their answer_in went with their entry: left there, they would answer everywhere) and
        the state forgets them."""
        gone = [s.source for s in self.state.sources.all_status() if s.source not in self.specs]
        if not gone or self.remove_root is None:
            return
        with self._locked(MANUAL_WAIT) as held:
            for name in gone if held else ():
                try:
                    self.remove_root(name)
                except (QwenbotError, RetrievalError) as exc:
                    log.warning("source %s, no longer in the sources file: its documents stay: %s", name, exc)
                    continue
                self.state.sources.forget(name)
                log.warning("source %s is no longer in the sources file: its documents left the index", name)

    def run(self, stop: threading.Event) -> None:
        """Drops the sources no longer configured, then syncs each source when it is due until `stop` is
        set; a failing one is backed off, the others go on."""
        tick = min(_TICK_MAX, max(1.0, min((s.interval_minutes for s in self.specs.values()), default=60) * 15))
        self._guarded(self.drop_removed)
        while self.specs and not stop.is_set():
            now = time.time()
            for spec in self.specs.values():
                if stop.is_set():
                    return
                self._guarded(functools.partial(self._scheduled, spec, now))
            stop.wait(tick)

    def _scheduled(self, spec: SourceSpec, now: float) -> None:
        if self._due(spec, now):
            self.sync(spec, "scheduled", only_if_due=True)

    def _guarded(self, step: Callable[[], object]) -> None:
        """Runs a step of the schedule; an outage of the state database (say) is logged, and the next
        round tries again: the loop never ends before the bot does."""
        try:
            step()
        except QwenbotError as exc:  # a StateError's text names the database, never its password
            log.warning("source sync schedule: %s; trying again at the next round", user_message(exc))
        except Exception as exc:
            log.error("source sync schedule failed (%s); trying again at the next round", type(exc).__name__)

    def sync_named(self, name: str | None, out: Callable[[str], None], why: str) -> int:
        """`qwenbot sync [SOURCE]` and `/qwenbot sync`: syncs now, writing a line per source (errors start
        with ERROR); exit status 1 when one failed."""
        failed = 0
        for spec in self.select(name):
            outcome = self.sync(spec, why, wait=MANUAL_WAIT)
            if outcome is None:
                failed += 1
                out(ERROR + f"{spec.name}: another replica kept the index busy for {MANUAL_WAIT:.0f} s: try again")
                continue
            for note in outcome.notes:
                out(f"note: {note}")
            out(outcome.line if outcome.ok else ERROR + outcome.line)
            failed += not outcome.ok
        return 1 if failed else 0

    def summary(self) -> list[str]:
        """A line per source for `/qwenbot status`."""
        return status.summary(status.source_rows(list(self.specs.values()), self.state.sources.all_status()))

    def handlers(self) -> dict[str, Handler]:
        """The control channel's `sync` request (`qwenbot sync` beside the running bot)."""

        def sync(args: dict[str, Any], send: Send) -> int:
            source = args.get("source")
            log.info("sync of %s requested through the control channel", source or "every source")
            return self.sync_named(str(source) if source else None, lambda line: send({"line": line}), "qwenbot sync")

        return {"sync": sync}


def unknown_source(name: str, known: Sequence[str]) -> str:
    listed = ", ".join(sorted(known)) if known else "none (QWENBOT_SOURCES_FILE lists no source)"
    return f"unknown source {name!r}: the sources are {listed}"


def report_line(report: SyncReport) -> str:
    """What a sync did, in one line of counts."""
    return (
        f"{report.added} added, {report.changed} changed, {report.deleted} deleted, {report.unchanged} unchanged; "
        f"{report.documents} documents; {report.requests} requests, {report.seconds:.1f} s"
    )

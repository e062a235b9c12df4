"""A running bot's index jobs: the same job `qwenbot index` runs (job.py), one at a time whoever asks
for it (`/qwenbot reindex`, the control channel, the schedule, the watcher, the start), its result
seen by the searcher before the job returns, and one log line of what it did."""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from bot.config import IndexingConfig
from bot.indexing.control import (
    ControlError,
    ControlServer,
    Handler,
    Send,
    index_request,
    search_handlers,
    settings_handlers,
)
from bot.indexing.job import ERROR, IndexRequest, job_counts, run_index_job
from bot.state import State
from retrieval.errors import IndexRequestError
from retrieval.indexer import Indexer
from retrieval.models import IndexStats
from retrieval.search import Searcher

log = logging.getLogger(__name__)


class IndexService:
    """Runs the bot's index jobs into its searcher's index. `closing` is set when the bot shuts down:
    a job asked for then is refused (the searcher may be gone)."""

    def __init__(
        self, config: IndexingConfig, searcher: Searcher, indexer: Indexer, state: State, closing: threading.Event
    ) -> None:
        self.config = config
        self.searcher = searcher
        self.indexer = indexer
        self.state = state
        self.closing = closing
        self.last_error: str | None = None  # the last logged job's failure, for `/qwenbot status`
        self._jobs = threading.Lock()  # one index job at a time, whoever asked for it
        # Roots kept by a source's sync (bot/sources/): a job over "every root" leaves them out, since on
        # a replica whose mirror is behind another's sync it would bring back documents deleted at the
        # source; their sync restores the mirror from the shared state before it indexes it.
        self.source_roots: frozenset[str] = frozenset()

    def reindex(self, why: str = "scheduled") -> None:
        """Indexes every root (new and changed docs), its lines going to the log."""
        if not self.config.docs_dir.is_dir():
            log.warning("index (%s): QWENBOT_DOCS_DIR %s is not a folder: nothing indexed", why, self.config.docs_dir)
            return
        errors: list[str] = []

        def out(line: str) -> None:
            if line.startswith(ERROR):
                errors.append(line.removeprefix(ERROR))
            log.log(logging.WARNING if line.startswith(ERROR) else logging.INFO, "index (%s): %s", why, line)

        try:
            status = self.reindex_docs(out, why)
        except Exception as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.exception("index (%s) of %s failed", why, self.config.docs_dir)
            return
        self.last_error = errors[0] if status != 0 and errors else None

    def reindex_alone(self, why: str) -> None:
        """`reindex`, unless another replica is indexing (replicas sharing a Chroma server, and their
        state, start together: one indexes, the others skip)."""
        with self.state.exclusive("reindex") as alone:
            if alone:
                self.reindex(why)
            else:
                log.info("index (%s) skipped: another replica is indexing", why)

    def reindex_docs(self, out: Callable[[str], None], why: str = "/qwenbot reindex") -> int:
        """New and changed docs in every root: the job `/qwenbot reindex` runs."""
        return self.run_index(IndexRequest(), out, why)

    def run_index(self, request: IndexRequest, out: Callable[[str], None], why: str = "control channel") -> int:
        """Runs one index job, the same one `qwenbot index` runs, writing its lines through `out`; returns
        its exit status. Jobs run one at a time. The searcher sees the result before this returns. The
        log gets one line of what the job did, whoever asked for it."""
        errors: list[str] = []
        done: list[IndexStats] = []

        def tee(line: str) -> None:
            if line.startswith(ERROR):
                errors.append(line.removeprefix(ERROR))
            out(line)

        status = self._run_job(request, tee, done.append)
        if done:
            log.info("index job (%s): %s; exit %d", why, job_counts(done[0]), status)
        elif status:
            log.warning("index job (%s) not run: %s (exit %d)", why, errors[0] if errors else "?", status)
        return status

    def index_root(self, name: str, folder: Path, why: str) -> IndexStats:
        """Indexes `folder` in full as the root `name` (recorded as that root the first time): a source's
        mirror after its sync. Raises IndexRequestError with the job's error line when it could not run."""
        errors: list[str] = []
        done: list[IndexStats] = []

        def out(line: str) -> None:
            if line.startswith(ERROR):
                errors.append(line.removeprefix(ERROR))

        self._run_job(IndexRequest(paths=[folder], add_root=name, move_root=True), out, done.append)
        if not done:
            raise IndexRequestError(f"indexing the mirror of {name!r} failed: {errors[0] if errors else '?'}")
        log.info("index job (%s): %s", why, job_counts(done[0]))
        return done[0]

    def remove_root(self, name: str) -> None:
        """Takes the root `name` and its documents out of the index (a source no longer configured)."""
        errors: list[str] = []
        status = self.run_index(IndexRequest(remove=[name]), errors.append, f"source {name} removed")
        if status != 0:
            raise IndexRequestError(f"removing the root {name!r} failed: {errors[-1] if errors else status}")

    def _without_sources(self, request: IndexRequest) -> IndexRequest | None:
        """`request` as it is, unless it indexes every root while some are sources': then over the other
        roots alone (None: there are none)."""
        everything = not (request.paths or request.list_only or request.remove or request.prune or request.add_root)
        if not (everything and self.source_roots):
            return request
        roots = [r for r in self.indexer.listing().roots if r.name not in self.source_roots and r.exists]
        return dataclasses.replace(request, paths=[Path(r.path) for r in roots]) if roots else None

    def _run_job(self, request: IndexRequest, out: Callable[[str], None], done: Callable[[IndexStats], None]) -> int:
        folders = self._without_sources(request)
        if folders is None:
            out("nothing to index: every root is a source's (`qwenbot sync` syncs and indexes those)")
            return 0
        request = folders
        if not self._jobs.acquire(blocking=False):
            out("waiting for the index job in progress to finish…")
            self._jobs.acquire()
        try:
            if self.closing.is_set():  # closing: the searcher may be gone
                out(ERROR + "the bot is shutting down: nothing indexed")
                return 1
            config = self.config
            status = run_index_job(
                config.index, config.docs_dir, request, out, progress=False, indexer=self.indexer, done=done
            )
            self.searcher.refresh()
        finally:
            self._jobs.release()
        return status

    def wait_for_job(self) -> None:
        """At shutdown: gives a job in progress `drain_seconds` to end."""
        if self._jobs.acquire(timeout=self.config.drain_seconds):
            self._jobs.release()
        else:  # the indexer is crash-safe: the next run redoes what this one leaves undone
            log.warning("shutting down during an index job: it stops unfinished")

    def open_control(self, more: Mapping[str, Handler] | None = None) -> Callable[[], None]:
        """Starts the control channel (`qwenbot index`, `ask`, `gaps`, `doctor` beside this bot, and `more`
        such as `qwenbot sync`); returns its closer."""

        def index(args: dict[str, Any], send: Send) -> int:
            log.info("index job requested through the control channel")
            return self.run_index(index_request(args), lambda line: send({"line": line}))

        try:
            shared = settings_handlers(self.config.shared_with_bot)
            handlers = {**search_handlers(self.searcher), **shared, "index": index, **(more or {})}
            server = ControlServer(self.config.index.index_dir, handlers)
        except ControlError as exc:
            log.warning("%s: `qwenbot index` and `qwenbot ask` cannot reach this bot", exc)
            return lambda: None
        return server.close

"""Indexing the changes in the docs folder as they happen (QWENBOT_WATCH_DOCS), following
QWENBOT_DOCS_DIR when it leads to another folder (a symlink swapped by git-sync, a volume mounted late)."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from watchfiles import Change, watch

from bot.indexing.service import IndexService
from retrieval.exclude import IGNORE_FILE

log = logging.getLogger(__name__)

# A job starts once no change came for WATCH_QUIET_MS (an editor saving, a `git pull` writing many
# files), or at the latest WATCH_MAX_WAIT_MS after the first change.
WATCH_QUIET_MS = 1000
WATCH_MAX_WAIT_MS = 10_000
# How often the watcher checks where QWENBOT_DOCS_DIR leads: a symlink swapped to another folder
# (git-sync) gives no event inside the folder being watched.
WATCH_RESOLVE_MS = 2000


class DocsWatcher:
    """Watches QWENBOT_DOCS_DIR as configured until `stop` is set: when it leads to another folder, the
    watch moves there and the new folder is indexed."""

    def __init__(self, service: IndexService, stop: threading.Event) -> None:
        self.service = service
        self.configured = service.config.docs_dir
        self.index_dir = service.config.index.index_dir.resolve()
        self.stop = stop

    def run(self) -> None:
        watching: Path | None = None
        missing = False
        while not self.stop.is_set():
            docs = self.configured.resolve()
            if not docs.is_dir():
                if not missing:
                    log.warning("QWENBOT_WATCH_DOCS: %s is not a folder: not watching it until it is", self.configured)
                missing = True
                self.stop.wait(WATCH_RESOLVE_MS / 1000)
                continue
            why = None
            if watching is not None and docs != watching:
                log.warning("QWENBOT_DOCS_DIR %s now points to %s (was %s)", self.configured, docs, watching)
                why = "docs folder swapped"
            elif missing:
                why = "docs folder found"
            watching, missing = docs, False
            log.info("watching %s for changes", docs)
            try:
                self._watch_folder(docs, why)
            except OSError as exc:  # the folder went away as the watch started: look again
                log.warning("watching %s failed (%s); looking again", docs, exc)
                self.stop.wait(WATCH_RESOLVE_MS / 1000)

    def _watch_folder(self, docs: Path, why: str | None) -> None:
        """Indexes the changes under `docs` (resolved) until QWENBOT_DOCS_DIR leads elsewhere, or the stop.
        With `why`, the whole folder is indexed once the watch is in place: a file written meanwhile is
        either in that job or seen by the watch."""

        def is_doc(change: Change, path: str) -> bool:
            # hidden files and folders are no documents (the indexer passes over them), nor is an index
            # folder kept inside the docs: indexing it would set off the next round. A root's ignore
            # file is read by the next run: a change to it is one.
            where = Path(path)
            parts = where.relative_to(docs).parts
            return not where.is_relative_to(self.index_dir) and (
                parts == (IGNORE_FILE,) or not any(part.startswith(".") for part in parts)
            )

        for changes in watch(
            docs,
            watch_filter=is_doc,
            step=WATCH_QUIET_MS,
            debounce=WATCH_MAX_WAIT_MS,
            stop_event=self.stop,
            rust_timeout=WATCH_RESOLVE_MS,
            yield_on_timeout=True,  # an empty set every WATCH_RESOLVE_MS: time to look where the setting leads
        ):
            if self.configured.resolve() != docs or not docs.is_dir():
                return  # swapped, or gone (a folder made again at its place is a new one to watch)
            if changes:
                log.info("%d changes under %s", len(changes), docs)
            if changes or why:
                self.service.reindex(why or "docs changed")  # waits for a job in progress: a change must not be skipped
                why = None

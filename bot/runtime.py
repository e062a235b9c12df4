"""What `qwenbot run` wires together: searcher, model client, answer pipeline, state, the Slack app,
and the indexing a bot does (at start, on a schedule, on changes in the docs folder, and for
`qwenbot index` / `/qwenbot reindex` through its control channel); plus the health and status reports."""

from __future__ import annotations

import logging
import threading
import time
import urllib.parse
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from slack_sdk import WebClient
from watchfiles import Change, watch

from bot.answer.pipeline import AnswerPipeline
from bot.bounded import BoundedCheck
from bot.control import (
    BotConnection,
    ControlError,
    ControlServer,
    Send,
    index_request,
    search_handlers,
    settings_handlers,
)
from bot.errors import StartupError
from bot.gaps import GapDigest
from bot.indexing import ERROR, IndexRequest, job_counts, run_index_job
from bot.llm.client import build_client
from bot.metrics import Metrics
from bot.settings import Settings
from bot.slack.answering import Answerer, Interruptible
from bot.slack.app import build_app
from bot.slack.client import make_client
from bot.slack.guard import StateMonitor, unreachable
from bot.slack.http import HttpServer
from bot.slack.listeners.commands import Reindexer
from bot.slack.policy import Policy
from bot.slack.workers import Workers
from bot.state import State
from bot.text import redact_url, short
from retrieval.config import IndexConfig
from retrieval.errors import IndexLockedError
from retrieval.exclude import IGNORE_FILE
from retrieval.indexer import Indexer
from retrieval.models import IndexStats
from retrieval.search import IndexInfo, Searcher
from retrieval.store import IndexLock, acquire_index_lock, lock_holder

log = logging.getLogger(__name__)

CUT_OFF_SECONDS = 5.0  # after the drain: time for answers cut off to say so in their threads
# Watching the docs folder: a job starts once no change came for WATCH_QUIET_MS (an editor saving, a
# `git pull` writing many files), or at the latest WATCH_MAX_WAIT_MS after the first change.
WATCH_QUIET_MS = 1000
INDEX_WAIT_SECONDS = 0.5  # how often a starting bot tries the index lock while another process holds it
WATCH_MAX_WAIT_MS = 10_000
# How often the watcher checks where QWENBOT_DOCS_DIR leads: a symlink swapped to another folder
# (git-sync) gives no event inside the folder being watched.
WATCH_RESOLVE_MS = 2000
# `/qwenbot status` waits this long for the model's GET /models (its reply may come later)
MODEL_CHECK_SECONDS = 5.0


class BotRuntime:
    """Everything a running bot holds: the searcher (and with it the local index lock), the model
    client, the answer pipeline, its SQLite state, the Bolt app, and the periodic re-indexer."""

    def __init__(self, settings: Settings, client: WebClient | None = None) -> None:
        self.settings = settings
        self.config = settings.index_config()
        self.started = time.time()
        self.last_reindex_error: str | None = None
        self._stop = threading.Event()
        self._closers: list[Callable[[], None]] = []
        self.metrics = Metrics(index_info=self.index_info)
        self._model_check = BoundedCheck(self.model_health, MODEL_CHECK_SECONDS, self._model_late)
        try:
            self.state = State.from_settings(settings)
            self._closers.append(self.state.close)
            # a shared database is pinged between events too, so that an outage is noticed at once
            self.state_monitor = StateMonitor(self.state.ping, watch=self.state.shared)
            self._closers.append(self.state_monitor.close)
            self.policy = Policy.from_settings(settings, self.state)
            # with a local index folder the searcher holds its lock for the bot's lifetime (a Chroma
            # folder is single-process), so re-indexing happens here, in-process
            self._closers.append(self._take_index().release)
            self.searcher = Searcher(self.config)
            self._closers.append(self.searcher.close)
            self.indexer = Indexer(self.config, docs_dir=settings.docs_dir)
            self._jobs = threading.Lock()  # one index job at a time, whoever asked for it
            self._closers.append(self._wait_for_index_job)
            self.llm = build_client(settings)
            self.pipeline = AnswerPipeline(settings, self.searcher, self.llm, self.metrics)
            self.client = client or make_client(settings)
            self.metrics.watch_slack(self.client)
            self.workers = Workers()
            # answers get cut off through this at the end of the shutdown drain
            self.answers = Interruptible(self.pipeline)
            self.answerer = Answerer(
                settings,
                self.answers,
                self.state,
                self.client,
                self.policy,
                self.metrics,
                state_monitor=self.state_monitor,
            )
            # leases are renewed until the drain is over (closers run last-in first-out)
            self._leases_stop = threading.Event()
            self._leases = threading.Thread(target=self._keep_leases, name="qwenbot-leases", daemon=True)
            self._leases.start()
            self._closers.append(self._stop_leases)
            self._closers.append(self._drain)
            self.app = build_app(
                settings,
                self.answers,
                self.state,
                self.client,
                policy=self.policy,
                status_report=self.status_report,
                workers=self.workers,
                metrics=self.metrics,
                answerer=self.answerer,
                reindexer=Reindexer(frozenset(settings.admin_users), self.reindex_docs),
            )
            if settings.metrics_port:
                self._closers.append(self._serve_operations(settings.metrics_host, settings.metrics_port))
            if not self.config.chroma_host:  # a Chroma server takes `qwenbot index` from anywhere itself
                self._closers.append(self._open_control())
        except BaseException:
            self.close()
            raise
        if settings.reindex_interval_minutes > 0:
            thread = threading.Thread(target=self._reindex_loop, name="qwenbot-reindex", daemon=True)
            thread.start()
        # in the background: the bot connects at once and the index as it is answers meanwhile
        if settings.index_on_start:
            threading.Thread(
                target=self._reindex_alone, args=("at start",), name="qwenbot-index-at-start", daemon=True
            ).start()
        if settings.watch_docs:
            threading.Thread(target=self._watch_docs, name="qwenbot-watch-docs", daemon=True).start()
        # The embedding model (and its ONNX export) is loaded before the bot serves or connects: else
        # /healthz says ok while the first question waits seconds for it.
        self._warm_up()
        if settings.gaps_channel:
            digest = GapDigest(
                settings,
                self.state,
                self.client,
                lambda texts: self.searcher.embedder.encode(texts),
                lambda query, k, scope: self.searcher.search(query, k=k, filter=scope),
                self.policy.scopes,
            )
            threading.Thread(target=digest.run, args=(self._stop,), name="qwenbot-gaps", daemon=True).start()

    def _warm_up(self) -> None:
        started = time.monotonic()
        try:
            self.searcher.embedder.warm_up()
        except Exception:  # the first question reports it (and tries again): here it is only logged
            log.exception("loading the embedding model failed")
            return
        log.info("embedding model %s loaded in %.1f s", self.config.embedding_model, time.monotonic() - started)

    def _take_index(self) -> IndexLock:
        """The local index's lock. While a `qwenbot index` in a terminal holds it, the bot waits for that
        job to end (it runs until done); another bot serving the index is refused at once."""
        waiting = False
        while True:
            try:
                return acquire_index_lock(self.config)
            except IndexLockedError:
                holder = lock_holder(self.config)
                if _serves_control(self.config, holder):
                    raise IndexLockedError(
                        f"the index in {self.config.index_dir} is served by another bot (pid {holder}); a local "
                        "index folder serves one bot: stop that one, or use a Chroma server (QWENBOT_CHROMA_HOST)"
                    ) from None
                if not waiting:
                    log.warning(
                        "the index in %s is in use by process %s (a `qwenbot index` in a terminal?): "
                        "waiting for it to finish before starting",
                        self.config.index_dir,
                        holder,
                    )
                    waiting = True
            time.sleep(INDEX_WAIT_SECONDS)

    def close(self) -> None:
        """Drains, then closes: answers in progress get `drain_seconds` to finish, any still running
        then is cut off (it says so in its thread), and only then are the state and index closed.
        Stop taking new events (the HTTP server, the Socket Mode connection) before calling this."""
        self._stop.set()
        while self._closers:
            try:
                self._closers.pop()()
            except Exception:
                log.exception("error while shutting down")

    def _drain(self) -> None:
        busy = self.workers.in_flight
        if busy:
            log.info("shutting down: waiting up to %gs for %d answers in progress", self.settings.drain_seconds, busy)
        if not self.workers.wait_idle(self.settings.drain_seconds):
            log.warning("drain time over: cutting off %d answers still in progress", self.workers.in_flight)
            self.answers.interrupt()
            self.state_monitor.close()  # questions held through an outage of the state database give up too
            if not self.workers.wait_idle(CUT_OFF_SECONDS):
                log.error("%d answers did not stop in time; closing under them", self.workers.in_flight)
        self.workers.shutdown(wait=False)

    def _keep_leases(self) -> None:
        """Renews the leases of the answers in progress here, and answers the questions of replicas
        that died mid-answer (their leases ran out)."""
        while not self._leases_stop.wait(self.state.lease_seconds / 3):
            try:
                self.state.renew_leases()
                # After an outage of the state database, every replica's leases may have run out
                # meanwhile: the others get a whole lease to renew theirs before any is taken over.
                if not self._stop.is_set() and self.state_monitor.up_for() >= self.state.lease_seconds:
                    for lease in self.state.take_abandoned():
                        self.workers.submit(self.answerer.resume, lease)
            except Exception as exc:
                if not unreachable(exc):
                    log.exception("renewing the answer leases failed")
                self.state_monitor.failed(exc)  # an outage: said once, not a traceback every few seconds

    def _stop_leases(self) -> None:
        self._leases_stop.set()
        self._leases.join()

    # --- periodic re-indexing ---
    def _reindex_loop(self) -> None:
        interval = self.settings.reindex_interval_minutes * 60
        # cycles are aligned to the clock, so replicas sharing the state agree on which cycle a run is
        while not self._stop.wait(interval - time.time() % interval):
            cycle = round(time.time() / interval)
            # one replica per cycle: the first to claim it (the lock then keeps a slow run out of the next)
            if self.state.claim(f"reindex:{cycle}"):
                self._reindex_alone(f"scheduled, cycle {cycle}")

    def reindex(self, why: str = "scheduled") -> None:
        """Indexes every root (new and changed docs), its lines going to the log."""
        if not self.settings.docs_dir.is_dir():
            log.warning("index (%s): QWENBOT_DOCS_DIR %s is not a folder: nothing indexed", why, self.settings.docs_dir)
            return
        errors: list[str] = []

        def out(line: str) -> None:
            if line.startswith(ERROR):
                errors.append(line.removeprefix(ERROR))
            log.log(logging.WARNING if line.startswith(ERROR) else logging.INFO, "index (%s): %s", why, line)

        try:
            status = self.reindex_docs(out, why)
        except Exception as exc:
            self.last_reindex_error = f"{type(exc).__name__}: {exc}"
            log.exception("index (%s) of %s failed", why, self.settings.docs_dir)
            return
        self.last_reindex_error = errors[0] if status != 0 and errors else None

    def _reindex_alone(self, why: str) -> None:
        # replicas sharing a Chroma server (and their state) start together: one indexes, the others skip
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

    def _run_job(self, request: IndexRequest, out: Callable[[str], None], done: Callable[[IndexStats], None]) -> int:
        if not self._jobs.acquire(blocking=False):
            out("waiting for the index job in progress to finish…")
            self._jobs.acquire()
        try:
            if self._stop.is_set():  # closing: the searcher may be gone
                out(ERROR + "the bot is shutting down: nothing indexed")
                return 1
            status = run_index_job(self.settings, request, out, progress=False, indexer=self.indexer, done=done)
            self.searcher.refresh()
        finally:
            self._jobs.release()
        return status

    def _wait_for_index_job(self) -> None:
        if self._jobs.acquire(timeout=self.settings.drain_seconds):
            self._jobs.release()
        else:  # the indexer is crash-safe: the next run redoes what this one leaves undone
            log.warning("shutting down during an index job: it stops unfinished")

    def _open_control(self) -> Callable[[], None]:
        """Starts the control channel; returns its closer."""

        def index(args: dict[str, Any], send: Send) -> int:
            log.info("index job requested through the control channel")
            return self.run_index(index_request(args), lambda line: send({"line": line}))

        try:
            handlers = {**search_handlers(self.searcher), **settings_handlers(self.settings), "index": index}
            server = ControlServer(self.config.index_dir, handlers)
        except ControlError as exc:
            log.warning("%s: `qwenbot index` and `qwenbot ask` cannot reach this bot", exc)
            return lambda: None
        return server.close

    def _watch_docs(self) -> None:
        """Watches QWENBOT_DOCS_DIR as configured: when it leads to another folder (a symlink swapped by
        git-sync, a volume mounted late), the watch moves there and the new folder is indexed."""
        configured = self.settings.docs_dir
        watching: Path | None = None
        missing = False
        while not self._stop.is_set():
            docs = configured.resolve()
            if not docs.is_dir():
                if not missing:
                    log.warning("QWENBOT_WATCH_DOCS: %s is not a folder: not watching it until it is", configured)
                missing = True
                self._stop.wait(WATCH_RESOLVE_MS / 1000)
                continue
            why = None
            if watching is not None and docs != watching:
                log.warning("QWENBOT_DOCS_DIR %s now points to %s (was %s)", configured, docs, watching)
                why = "docs folder swapped"
            elif missing:
                why = "docs folder found"
            watching, missing = docs, False
            log.info("watching %s for changes", docs)
            try:
                self._watch_folder(docs, why)
            except OSError as exc:  # the folder went away as the watch started: look again
                log.warning("watching %s failed (%s); looking again", docs, exc)
                self._stop.wait(WATCH_RESOLVE_MS / 1000)

    def _watch_folder(self, docs: Path, why: str | None) -> None:
        """Indexes the changes under `docs` (resolved) until QWENBOT_DOCS_DIR leads elsewhere, or the stop.
        With `why`, the whole folder is indexed once the watch is in place: a file written meanwhile is
        either in that job or seen by the watch."""
        index_dir = self.config.index_dir.resolve()

        def is_doc(change: Change, path: str) -> bool:
            # hidden files and folders are no documents (the indexer passes over them), nor is an index
            # folder kept inside the docs: indexing it would set off the next round. A root's ignore
            # file is read by the next run: a change to it is one.
            where = Path(path)
            parts = where.relative_to(docs).parts
            return not where.is_relative_to(index_dir) and (
                parts == (IGNORE_FILE,) or not any(part.startswith(".") for part in parts)
            )

        for changes in watch(
            docs,
            watch_filter=is_doc,
            step=WATCH_QUIET_MS,
            debounce=WATCH_MAX_WAIT_MS,
            stop_event=self._stop,
            rust_timeout=WATCH_RESOLVE_MS,
            yield_on_timeout=True,  # an empty set every WATCH_RESOLVE_MS: time to look where the setting leads
        ):
            if self.settings.docs_dir.resolve() != docs or not docs.is_dir():
                return  # swapped, or gone (a folder made again at its place is a new one to watch)
            if changes:
                log.info("%d changes under %s", len(changes), docs)
            if changes or why:
                self.reindex(why or "docs changed")  # waits for a job in progress: a change must not be skipped
                why = None

    # --- health ---
    def index_info(self) -> IndexInfo:
        return self.searcher.stats()

    def model_health(self) -> tuple[bool, str]:
        if self.llm is None:
            return True, "none configured: answers are quoted passages (extractive)"
        try:
            self.llm.served_models()
        except Exception as exc:  # an LLMError: what failed and what to check, as doctor and ask say it
            return False, f"{self._model_where()}: {short(str(exc), 300)}"
        return True, f"{self._model_where()}: reachable"

    def _model_late(self, waited: float) -> tuple[bool, str]:
        return False, (
            f"{self._model_where()}: timed out: no reply to GET /models within {MODEL_CHECK_SECONDS:g}s "
            f"(asked {waited:.0f}s ago; the server may be overloaded or hung)"
        )

    def _model_where(self) -> str:
        host = urllib.parse.urlsplit(redact_url(self.settings.llm_base_url or "")).netloc  # where, not who
        return f"`{self.settings.llm_model}` at `{host}`"

    def _serve_operations(self, host: str, port: int) -> Callable[[], None]:
        """Serves /healthz and /metrics on a port of their own (QWENBOT_METRICS_PORT), in any mode;
        returns its closer."""
        try:
            server = HttpServer(None, host, port, self.health, metrics=self.metrics.registry)
            server.start()
        except OSError as exc:
            raise StartupError(
                f"cannot serve /healthz and /metrics on {host}:{port} ({exc.strerror or exc}); "
                "choose another QWENBOT_METRICS_PORT"
            ) from None
        log.info("serving /healthz and /metrics on http://%s:%d", host, server.port)
        return server.stop

    def health(self) -> dict[str, Any]:
        """For /healthz: cheap checks only (the model is checked by `/qwenbot status`). Not ready while
        the state database is unreachable: no question can be claimed then."""
        if self.state_monitor.down or not self.state_monitor.check():  # the monitor says when it is back
            return {"ok": False, "state": "unreachable"}
        try:
            info = self.index_info()
        except Exception as exc:
            log.warning("health check: index unavailable: %s", exc)
            return {"ok": False, "index": f"unavailable: {short(str(exc))}"}
        return {
            "ok": info.chunks > 0,
            "index_chunks": info.chunks,
            "index_documents": info.documents,
            "last_indexed": info.last_indexed,
            "uptime_seconds": round(time.time() - self.started),
        }

    def status_report(self) -> str:
        """The `/qwenbot status` reply."""
        try:
            info = self.index_info()
            index_ok = info.chunks > 0
            index_line = (
                f"{info.documents:,} documents in {info.chunks:,} chunks, last indexed {_when(info.last_indexed)}"
            )
        except Exception as exc:
            index_ok, index_line = False, f"unavailable ({short(str(exc))})"
        model_ok, model_line = self._model_check()  # bounded, and one check at a time however many ask
        counts = self.state.counts()
        lines = [
            f"*qwenbot status*: {':white_check_mark: healthy' if index_ok and model_ok else ':x: degraded'}",
            f"• Index: {index_line}",
            f"• Model: {model_line}",
            f"• Answered {_count(counts['answers'], 'question')}; {_count(counts['feedback'], 'rating')} received",
        ]
        if self.settings.reindex_interval_minutes > 0:
            lines.append(f"• Re-indexing every {self.settings.reindex_interval_minutes:g} min")
        if self.settings.watch_docs:
            lines.append("• Indexing changes in the docs folder as they happen")
        if self.last_reindex_error:
            lines.append(f"• The last index job failed: {short(self.last_reindex_error)}")
        if changed := self.settings.changed_since_read():
            lines[0] = "*qwenbot status*: :x: degraded"
            lines.append(
                f"• Settings changed since this bot started ({', '.join(changed)}): restart the bot to use them"
            )
        return "\n".join(lines)


def _serves_control(config: IndexConfig, pid: str) -> bool:
    """Whether the process holding the index is a bot: one answers on the control channel."""
    try:
        BotConnection(config.index_dir, pid).stats()
    except (ControlError, OSError, ValueError):
        return False
    return True


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _when(iso: str | None) -> str:
    if not iso:
        return "never"
    try:
        return datetime.fromisoformat(iso).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return iso

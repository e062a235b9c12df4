"""What `qwenbot run` wires together: searcher, model client, answer pipeline, state, the Slack app,
and the periodic re-indexer; plus the health and status reports built from them."""

from __future__ import annotations

import logging
import threading
import time
import urllib.parse
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from slack_sdk import WebClient

from bot.answer.pipeline import AnswerPipeline
from bot.llm import build_client
from bot.settings import Settings
from bot.slack.answering import Interruptible
from bot.slack.app import build_app
from bot.slack.client import make_client
from bot.slack.policy import Policy
from bot.slack.workers import Workers
from bot.state import State
from bot.text import redact_url, short
from retrieval.indexer import Indexer
from retrieval.search import IndexInfo, Searcher

log = logging.getLogger(__name__)

CUT_OFF_SECONDS = 5.0  # after the drain: time for answers cut off to say so in their threads


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
        try:
            self.policy = Policy.from_settings(settings)
            self.state = State(settings.state_db, settings.dedupe_ttl_hours)
            self._closers.append(self.state.close)
            # with a local index folder the searcher holds its lock for the bot's lifetime (a Chroma
            # folder is single-process), so re-indexing happens here, in-process
            self.searcher = Searcher(self.config)
            self._closers.append(self.searcher.close)
            self.llm = build_client(settings)
            self.pipeline = AnswerPipeline(settings, self.searcher, self.llm)
            self.client = client or make_client(settings)
            self.workers = Workers()
            # answers get cut off through this at the end of the shutdown drain
            self.answers = Interruptible(self.pipeline)
            self._closers.append(self._drain)
            self.app = build_app(
                settings,
                self.answers,
                self.state,
                self.client,
                policy=self.policy,
                status_report=self.status_report,
                workers=self.workers,
            )
        except BaseException:
            self.close()
            raise
        if settings.reindex_interval_minutes > 0:
            thread = threading.Thread(target=self._reindex_loop, name="qwenbot-reindex", daemon=True)
            thread.start()
        # Loads the embedding model (and its ONNX export) now: the first question would wait ~4 s for it.
        threading.Thread(target=self._warm_up, name="qwenbot-warm-up", daemon=True).start()

    def _warm_up(self) -> None:
        try:
            self.searcher.embedder.warm_up()
        except Exception:  # the first question reports it (and tries again): here it is only logged
            log.exception("loading the embedding model failed")

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
            if not self.workers.wait_idle(CUT_OFF_SECONDS):
                log.error("%d answers did not stop in time; closing under them", self.workers.in_flight)
        self.workers.shutdown(wait=False)

    # --- periodic re-indexing ---
    def _reindex_loop(self) -> None:
        interval = self.settings.reindex_interval_minutes * 60
        while not self._stop.wait(interval):
            self.reindex()

    def reindex(self) -> None:
        try:
            stats = Indexer(self.config).run([self.settings.docs_dir], progress=False)
        except Exception as exc:
            self.last_reindex_error = f"{type(exc).__name__}: {exc}"
            log.exception("re-indexing %s failed", self.settings.docs_dir)
            return
        self.last_reindex_error = None
        log.info(
            "re-indexed %s: %d added, %d updated, %d removed, %d failed in %.1f s",
            self.settings.docs_dir,
            stats.added,
            stats.updated,
            stats.removed,
            stats.failed,
            stats.seconds,
        )

    # --- health ---
    def index_info(self) -> IndexInfo:
        return self.searcher.stats()

    def model_health(self) -> tuple[bool, str]:
        if self.llm is None:
            return True, "none configured: answers are quoted passages (extractive)"
        host = urllib.parse.urlsplit(redact_url(self.settings.llm_base_url or "")).netloc  # where, not who
        try:
            self.llm.list_models()
        except Exception as exc:
            return False, f"`{self.settings.llm_model}` at `{host}`: unreachable ({short(str(exc))})"
        return True, f"`{self.settings.llm_model}` at `{host}`: reachable"

    def health(self) -> dict[str, Any]:
        """For /healthz: cheap checks only (the model is checked by `/qwenbot status`)."""
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
        model_ok, model_line = self.model_health()
        counts = self.state.counts()
        lines = [
            f"*qwenbot status*: {':white_check_mark: healthy' if index_ok and model_ok else ':x: degraded'}",
            f"• Index: {index_line}",
            f"• Model: {model_line}",
            f"• Answered {counts['answers']:,} questions; {counts['feedback']:,} ratings received",
        ]
        if self.settings.reindex_interval_minutes > 0:
            lines.append(
                f"• Re-indexing every {self.settings.reindex_interval_minutes:g} min"
                + (f"; last attempt failed: {short(self.last_reindex_error)}" if self.last_reindex_error else "")
            )
        return "\n".join(lines)


def _when(iso: str | None) -> str:
    if not iso:
        return "never"
    try:
        return datetime.fromisoformat(iso).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return iso

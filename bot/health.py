"""How a running bot is doing: /healthz (cheap checks, for load balancers), the model's health, and
the `/qwenbot status` report; and the operations port that serves /healthz and /metrics on its own."""

from __future__ import annotations

import logging
import time
import urllib.parse
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from bot.bounded import BoundedCheck
from bot.config import HealthConfig
from bot.errors import StartupError
from bot.indexing.service import IndexService
from bot.llm.client import LLMClient
from bot.metrics import Metrics
from bot.slack.guard import StateMonitor
from bot.slack.http import HttpServer
from bot.slack.mrkdwn import escape
from bot.state import State
from bot.text import redact_url, short
from retrieval.search import IndexInfo, Searcher

log = logging.getLogger(__name__)

# `/qwenbot status` waits this long for the model's GET /models (its reply may come later)
MODEL_CHECK_SECONDS = 5.0


class BotHealth:
    """The health checks and reports of one running bot."""

    def __init__(
        self,
        config: HealthConfig,
        searcher: Searcher,
        llm: LLMClient | None,
        state: State,
        monitor: StateMonitor,
        indexing: IndexService,
        *,
        settings_changed: Callable[[], list[str]],  # Settings.changed_since_read: a restart is due
        sources_summary: Callable[[], list[str]] | None = None,  # a line per source (bot/sources/)
    ) -> None:
        self.config = config
        self.settings_changed = settings_changed
        self.sources_summary = sources_summary
        self.searcher = searcher
        self.llm = llm
        self.state = state
        self.monitor = monitor
        self.indexing = indexing
        self.started = time.time()
        self._model_check = BoundedCheck(self.model_health, MODEL_CHECK_SECONDS, self._model_late)

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
        host = urllib.parse.urlsplit(redact_url(self.config.llm_base_url or "")).netloc  # where, not who
        return f"`{self.config.llm_model}` at `{host}`"

    def healthz(self) -> dict[str, Any]:
        """For /healthz: cheap checks only (the model is checked by `/qwenbot status`). Not ready while
        the state database is unreachable: no question can be claimed then."""
        if self.monitor.down or not self.monitor.check():  # the monitor says when it is back
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
        counts = self.state.questions.counts()
        lines = [
            f"*qwenbot status*: {':white_check_mark: healthy' if index_ok and model_ok else ':x: degraded'}",
            f"• Index: {index_line}",
            f"• Model: {model_line}",
            f"• Answered {_count(counts['answers'], 'question')}; {_count(counts['feedback'], 'rating')} received",
        ]
        if self.config.reindex_interval_minutes > 0:
            lines.append(f"• Re-indexing every {self.config.reindex_interval_minutes:g} min")
        if self.config.watch_docs:
            lines.append("• Indexing changes in the docs folder as they happen")
        if self.indexing.last_error:
            lines.append(f"• The last index job failed: {short(self.indexing.last_error)}")
        sources = self.sources_summary() if self.sources_summary else []
        if sources:  # their names and errors are the operator's and the sources' text: made inert
            lines.append("• Sources:\n" + "\n".join(f"    ◦ {escape(line)}" for line in sources))
        if changed := self.settings_changed():
            lines[0] = "*qwenbot status*: :x: degraded"
            lines.append(
                f"• Settings changed since this bot started ({', '.join(changed)}): restart the bot to use them"
            )
        return "\n".join(lines)


def serve_operations(
    host: str, port: int, health: Callable[[], dict[str, Any]], metrics: Metrics
) -> Callable[[], None]:
    """Serves /healthz and /metrics on a port of their own (QWENBOT_METRICS_PORT), in any mode;
    returns its closer."""
    try:
        server = HttpServer(None, host, port, health, metrics=metrics.registry)
        server.start()
    except OSError as exc:
        raise StartupError(
            f"cannot serve /healthz and /metrics on {host}:{port} ({exc.strerror or exc}); "
            "choose another QWENBOT_METRICS_PORT"
        ) from None
    log.info("serving /healthz and /metrics on http://%s:%d", host, server.port)
    return server.stop


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _when(iso: str | None) -> str:
    if not iso:
        return "never"
    try:
        return datetime.fromisoformat(iso).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return iso

"""Prometheus metrics of one running bot: questions, latencies, model and Slack errors, feedback, the
index, answers in flight.

Each BotRuntime has its own CollectorRegistry (not prometheus_client's global one), so tests and
several runtimes in one process never count into each other. Served at /metrics by the HTTP transport
(bot/slack/http.py) and, in any mode, on QWENBOT_METRICS_PORT (`serve`).
"""

from __future__ import annotations

import logging
import time
import urllib.parse
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, Protocol, get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from slack_sdk import WebClient
from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

from bot.errors import StartupError
from bot.llm.errors import LLMErrorKind

log = logging.getLogger(__name__)

# How an asked question ended: the pipeline's answer modes (failed: the model failed and nothing was
# quoted), plus refused (channel not enabled, rate limit) and error (the asker got an apology).
QUESTION_MODES = ("generated", "not_found", "extractive", "failed", "refused", "error")
# Why the model gave no (complete) answer: the client's error kinds, an empty answer, or one cut at the
# output token limit (QWENBOT_LLM_MAX_TOKENS).
MODEL_ERROR_KINDS = (*get_args(LLMErrorKind), "empty", "length")
RATINGS = ("up", "down")


class IndexFigures(Protocol):
    """What the index gauges show (retrieval.search.IndexInfo has it): declared here, so that metrics
    need not import the search stack."""

    @property
    def documents(self) -> int: ...

    @property
    def chunks(self) -> int: ...

    @property
    def last_indexed(self) -> str | None: ...  # ISO timestamp of the last index run that changed the index


class Metrics:
    def __init__(self, index_info: Callable[[], IndexFigures] | None = None) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.questions = Counter("qwenbot_questions", "Questions, by how they were answered", ["mode"], registry=r)
        self.search_seconds = Histogram(
            "qwenbot_search_seconds",
            "Time to search the docs for a question",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.first_token_seconds = Histogram(
            "qwenbot_first_token_seconds",
            "Time from the question to the first answer text from the model",
            buckets=(0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60),
            registry=r,
        )
        self.answer_seconds = Histogram(
            "qwenbot_answer_seconds",
            "Time from the question to the final answer in Slack",
            buckets=(0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120),
            registry=r,
        )
        self.model_errors = Counter(
            "qwenbot_model_errors", "Answers the model failed to give, by kind", ["kind"], registry=r
        )
        self.slack_api_errors = Counter(
            "qwenbot_slack_api_errors",
            "Slack Web API calls that failed (each attempt; 429s are counted apart)",
            ["method", "error"],
            registry=r,
        )
        self.slack_rate_limited = Counter(
            "qwenbot_slack_rate_limited", "Slack Web API calls answered 429 (each attempt)", ["method"], registry=r
        )
        self.feedback = Counter("qwenbot_feedback", "Answers rated, by rating", ["rating"], registry=r)
        self.answers_in_flight = Gauge("qwenbot_answers_in_flight", "Answers being written now", registry=r)
        # every series of a fixed label set shows from the start (as 0): rate() needs the zero
        for mode in QUESTION_MODES:
            self.questions.labels(mode)
        for kind in MODEL_ERROR_KINDS:
            self.model_errors.labels(kind)
        for rating in RATINGS:
            self.feedback.labels(rating)
        if index_info is not None:
            r.register(_IndexCollector(index_info))

    def question(self, mode: str, timings: dict[str, float]) -> None:
        """One question ended in `mode`; `timings` in seconds: search, first_token, total (as known)."""
        self.questions.labels(mode).inc()
        for key, histogram in (
            ("search", self.search_seconds),
            ("first_token", self.first_token_seconds),
            ("total", self.answer_seconds),
        ):
            if key in timings:
                histogram.observe(timings[key])

    def watch_slack(self, client: WebClient) -> None:
        """Counts the client's failed calls and 429s: a retry handler that never retries, placed first
        so slack_sdk shows it every response (its own 429 retry handler comes after)."""
        client.retry_handlers.insert(0, _SlackCallCounter(self))

    def serve(self, host: str, port: int) -> Callable[[], None]:
        """Serves /metrics on host:port from a thread (for Socket Mode, which has no HTTP server of its
        own); returns the function that stops it."""
        try:
            server, thread = start_http_server(port, host, self.registry)
        except OSError as exc:
            raise StartupError(
                f"cannot serve metrics on {host}:{port} ({exc.strerror or exc}); choose another QWENBOT_METRICS_PORT"
            ) from None
        log.info("serving Prometheus metrics on http://%s:%d/metrics", host, server.server_port)

        def stop() -> None:
            server.shutdown()
            server.server_close()
            thread.join()

        return stop


class _SlackCallCounter(RetryHandler):
    def __init__(self, metrics: Metrics) -> None:
        super().__init__(max_retry_count=0)
        self.metrics = metrics

    def can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        method = urllib.parse.urlsplit(request.url).path.rsplit("/", 1)[-1]
        if response is None:  # no answer at all: connection refused, timeout
            self.metrics.slack_api_errors.labels(method, type(error).__name__).inc()
        elif response.status_code == 429:
            self.metrics.slack_rate_limited.labels(method).inc()
        elif response.status_code >= 400:
            self.metrics.slack_api_errors.labels(method, f"http_{response.status_code}").inc()
        elif response.body and response.body.get("ok") is False:
            self.metrics.slack_api_errors.labels(method, str(response.body.get("error") or "unknown")).inc()
        return False

    def _can_retry(self, **kwargs: Any) -> bool:  # abstract in RetryHandler; can_retry above decides
        return False


class _IndexCollector(Collector):
    """The index's size and age, read from the index at each scrape (it changes under a running bot)."""

    def __init__(self, index_info: Callable[[], IndexFigures]) -> None:
        self.index_info = index_info

    def describe(self) -> Iterator[Metric]:
        yield from _index_families()

    def collect(self) -> Iterator[Metric]:
        try:
            info = self.index_info()
        except Exception as exc:  # the scrape still answers; the index series are absent (alert on absent())
            log.warning("metrics: index unavailable: %s", exc)
            return
        documents, chunks, age = _index_families()
        documents.add_metric([], info.documents)
        chunks.add_metric([], info.chunks)
        yield documents
        yield chunks
        if info.last_indexed:
            try:
                indexed = datetime.fromisoformat(info.last_indexed).timestamp()
            except ValueError:
                return
            age.add_metric([], max(0.0, time.time() - indexed))
            yield age


def _index_families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
    return (
        GaugeMetricFamily("qwenbot_index_documents", "Documents in the index"),
        GaugeMetricFamily("qwenbot_index_chunks", "Chunks (passages) in the index"),
        GaugeMetricFamily("qwenbot_index_age_seconds", "Seconds since the last index run that changed the index"),
    )

"""What `qwenbot run` wires together: searcher, model client, answer pipeline, state, the Slack app,
and the features that run beside it, each in its home: indexing (bot/indexing/: at start, on a
schedule, on changes in the docs folder, `/qwenbot reindex` and the control channel), the answer
leases shared by replicas (bot/replicas.py), the knowledge-gap digest (bot/gaps/digest.py) and the
health and status reports (bot/health.py). This module constructs and starts them; it holds no loop."""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable

from slack_sdk import WebClient

from bot.answer.pipeline import AnswerPipeline
from bot.config import SlackConfig
from bot.gaps.digest import GapDigest
from bot.health import BotHealth, serve_operations
from bot.indexing.schedule import reindex_on_schedule
from bot.indexing.service import IndexService
from bot.indexing.start import index_at_start, take_index_lock
from bot.indexing.watch import DocsWatcher
from bot.knowledge.learned import LearnedAnswers, LearnedConfig, keep_up
from bot.llm.client import build_client
from bot.logs import UserHasher
from bot.metrics import Metrics
from bot.replicas import LeaseKeeper
from bot.settings import Settings
from bot.slack.answering import Answerer, Interruptible
from bot.slack.app import build_app
from bot.slack.client import make_client
from bot.slack.guard import StateMonitor
from bot.slack.listeners.commands import Reindexer
from bot.slack.policy import Policy
from bot.slack.workers import Workers
from bot.sources.runner import SourceRunner
from bot.state import State
from retrieval.indexer import Indexer
from retrieval.search import Searcher
from retrieval.sources.config import LEARNED_ROOT, load_sources

log = logging.getLogger(__name__)

CUT_OFF_SECONDS = 5.0  # after the drain: time for answers cut off to say so in their threads


class BotRuntime:
    """Everything a running bot holds: the searcher (and with it the local index lock), the model
    client, the answer pipeline, its state, the Bolt app, and the features started beside them."""

    def __init__(self, settings: Settings, client: WebClient | None = None) -> None:
        self.settings = settings
        self.config = settings.index_config()
        self._stop = threading.Event()  # set when the bot closes: every loop started here ends
        self._closers: list[Callable[[], None]] = []
        try:
            self._wire(settings, client)
        except BaseException:
            self.close()
            raise
        self._start_features()

    def _wire(self, settings: Settings, client: WebClient | None) -> None:
        slack = settings.slack_config()
        self.state = State.from_config(settings.state_config())
        self._closers.append(self.state.close)
        # a shared database is pinged between events too, so that an outage is noticed at once
        self.state_monitor = StateMonitor(self.state.ping, watch=self.state.shared)
        self._closers.append(self.state_monitor.close)
        sources = settings.sources_config()
        self.source_specs = load_sources(sources.sources_file, sources.env)  # a bad file stops the start
        self.policy = Policy.from_config(slack, self.state.limits, self.source_specs)
        # with a local index folder the searcher holds its lock for the bot's lifetime (a Chroma
        # folder is single-process), so re-indexing happens here, in-process
        self._closers.append(take_index_lock(self.config).release)
        self.searcher = Searcher(self.config)
        self._closers.append(self.searcher.close)
        self.indexing = IndexService(
            settings.indexing_config(),
            self.searcher,
            Indexer(self.config, docs_dir=settings.docs_dir),
            self.state,
            self._stop,
        )
        self._closers.append(self.indexing.wait_for_job)
        # each source syncs into its mirror, indexed as its root through the index jobs (bot/sources/)
        self.sources = SourceRunner(
            sources, self.source_specs, self.state, self.indexing.index_root, self.indexing.remove_root
        )
        # a full re-index leaves these roots alone: their own loops index them (learned answers: bot/knowledge/)
        self.indexing.source_roots = frozenset(self.sources.specs) | {LEARNED_ROOT}
        self.metrics = Metrics(index_info=self.searcher.stats)
        self.llm = build_client(settings.llm_config())
        self.reports = BotHealth(
            settings.health_config(),
            self.searcher,
            self.llm,
            self.state,
            self.state_monitor,
            self.indexing,
            settings_changed=settings.changed_since_read,
            sources_summary=self.sources.summary,
        )
        # what the HTTP server and `/qwenbot status` call
        self.index_info = self.reports.index_info
        self.model_health = self.reports.model_health
        self.health = self.reports.healthz
        self.status_report = self.reports.status_report
        self._wire_slack(settings, slack, client or make_client(slack))

    def _wire_slack(self, settings: Settings, slack: SlackConfig, client: WebClient) -> None:
        """The answers, their leases, the Bolt app, and the servers beside it."""
        self.client = client
        self.metrics.watch_slack(client)
        self.workers = Workers()
        # answers get cut off through this at the end of the shutdown drain
        self.answers = Interruptible(AnswerPipeline(settings.answer_config(), self.searcher, self.llm, self.metrics))
        self.answerer = Answerer(
            slack,
            self.answers,
            self.state,
            client,
            self.policy,
            self.metrics,
            hash_user=UserHasher.from_config(settings.log_config()),
            state_monitor=self.state_monitor,
        )
        mirror = settings.sources_config().sources_dir / LEARNED_ROOT / "mirror"
        self.learned = LearnedAnswers(
            LearnedConfig(mirror, settings.learned_expiry_days),
            self.state.knowledge,
            lambda folder: self.indexing.index_root(LEARNED_ROOT, folder, "learned answers"),
            known_scopes=self.policy.learned_keys,
        )
        # leases are renewed until the drain is over (closers run last-in first-out)
        leases = LeaseKeeper(self.state, self.state_monitor, self.workers, self.answerer.resume, self._stop)
        leases.start()
        self._closers.append(leases.stop)
        self._closers.append(self._drain)
        self.app = build_app(
            slack,
            client,
            answerer=self.answerer,
            workers=self.workers,
            status_report=self.status_report,
            reindexer=Reindexer(
                frozenset(settings.admin_users),
                self.indexing.reindex_docs,
                functools.partial(self.sources.sync_named, why="/qwenbot sync"),
            ),
            learned=self.learned,
        )
        if settings.metrics_port:
            self._closers.append(
                serve_operations(settings.metrics_host, settings.metrics_port, self.health, self.metrics)
            )
        if not self.config.chroma_host:  # a Chroma server takes `qwenbot index` from anywhere itself
            self._closers.append(self.indexing.open_control(self.sources.handlers()))

    def _start_features(self) -> None:
        settings = self.settings
        if settings.reindex_interval_minutes > 0:
            _thread("reindex", reindex_on_schedule, self.indexing, settings.reindex_interval_minutes, self._stop)
        # in the background: the bot connects at once and the index as it is answers meanwhile
        if settings.index_on_start:
            _thread("index-at-start", index_at_start, self.indexing)
        if settings.watch_docs:
            _thread("watch-docs", DocsWatcher(self.indexing, self._stop).run)
        # The embedding model (and its ONNX export) is loaded before the bot serves or connects: else
        # /healthz says ok while the first question waits seconds for it.
        self._warm_up()
        # each on its interval, the first sync at once; those no longer configured leave the index
        _thread("sources", self.sources.run, self._stop)
        _thread("learned", keep_up, self.learned, self._stop)
        if settings.gaps_channel:
            searcher = self.searcher
            digest = GapDigest(
                settings.gaps_config(),
                self.state,
                self.client,
                searcher.embedder.encode,
                lambda query, k, scope: searcher.search(query, k=k, filter=scope),
                self.policy.scopes,
            )
            _thread("gaps", digest.run, self._stop)

    def _warm_up(self) -> None:
        started = time.monotonic()
        try:
            self.searcher.embedder.warm_up()
        except Exception:  # the first question reports it (and tries again): here it is only logged
            log.exception("loading the embedding model failed")
            return
        log.info("embedding model %s loaded in %.1f s", self.config.embedding_model, time.monotonic() - started)

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


def _thread(name: str, target: Callable[..., object], *args: object) -> None:
    threading.Thread(target=target, args=args, name=f"qwenbot-{name}", daemon=True).start()

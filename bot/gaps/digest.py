"""The knowledge-gap digest: the running bot posts the report (report.py), rendered for Slack
(render.py), to QWENBOT_GAPS_CHANNEL on its schedule (QWENBOT_GAPS_SCHEDULE / _TIMEZONE)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from slack_sdk import WebClient

from bot.config import GapsConfig
from bot.errors import ConfigError
from bot.gaps import render
from bot.gaps.report import Embed, ReportSource, Search, build_report
from bot.settings import parse_schedule
from bot.slack.policy import ChannelScopes
from bot.state import State

log = logging.getLogger(__name__)

DIGEST_POLL_SECONDS = 30.0  # how often the digest thread looks at the clock


class GapDigest:
    """Posts the report to QWENBOT_GAPS_CHANNEL at each scheduled time, covering the period since the
    previous one (a week, or a day for "daily"). Driven by `tick(now)`, so tests move a fake clock;
    `run` ticks it from a thread. Replicas sharing the state post each digest once (a claim)."""

    def __init__(
        self,
        config: GapsConfig,
        state: State,
        client: WebClient,
        embed: Embed,
        search: Search,
        scopes: ChannelScopes,
    ) -> None:
        if not config.gaps_channel:
            raise ConfigError("QWENBOT_GAPS_CHANNEL is not set")
        self.channel = config.gaps_channel
        self.weekday, self.hour, self.minute = parse_schedule(config.gaps_schedule)
        self.zone = ZoneInfo(config.gaps_timezone)
        self.state = state
        self.source = ReportSource(state, embed, search, config.gaps_include, scopes)
        self.client = client
        self.next_due: float | None = None

    def due_after(self, now: float) -> float:
        """The first scheduled time after `now` (wall-clock time in the configured zone)."""
        local = datetime.fromtimestamp(now, self.zone)
        start = local.replace(hour=self.hour, minute=self.minute, second=0, microsecond=0)
        for days in range(8):
            at = start + timedelta(days=days)  # zone-aware: wall-clock days, across DST changes
            if at.timestamp() > now and (self.weekday is None or at.weekday() == self.weekday):
                return at.timestamp()
        raise AssertionError("a weekday recurs within 8 days")

    def period_start(self, due: float) -> float:
        days = 1 if self.weekday is None else 7
        return (datetime.fromtimestamp(due, self.zone) - timedelta(days=days)).timestamp()

    def tick(self, now: float) -> str | None:
        """Posts the digest if one is due; returns its ts. The first tick only sets the schedule."""
        if self.next_due is None:
            self.next_due = self.due_after(now)
            return None
        if now < self.next_due:
            return None
        due, self.next_due = self.next_due, self.due_after(now)
        if not self.state.claims.claim(f"gaps:{due:.0f}", now):
            return None  # another replica posted it
        return self.post(self.period_start(due), due)

    def post(self, since: float, until: float) -> str:
        report = build_report(self.source, since, until)
        ids = [self.state.gaps.add_group(g.question_ids) for g in report.groups[: render.MAX_DIGEST_GROUPS]]
        message = render.digest_message(report, ids, self.source.scopes.owner_groups)
        resp = self.client.chat_postMessage(
            channel=self.channel, text=message.text, blocks=message.blocks, unfurl_links=False, unfurl_media=False
        )
        log.info("posted the knowledge-gap digest: %d questions in %d groups", report.total, len(report.groups))
        return str(resp["ts"])

    def run(self, stop: threading.Event, clock: Callable[[], float] = time.time) -> None:
        """Ticks until `stop` is set; a failed digest is logged and tried again at the next time."""
        while True:
            try:
                self.tick(clock())
            except Exception:
                log.exception("the knowledge-gap digest failed")
            if stop.wait(DIGEST_POLL_SECONDS):
                return

"""Two `qwenbot run --http` replicas through an outage of their shared PostgreSQL that outlasts every
lease: each question (one of them being written when the database went down) is answered exactly once,
and no replica takes over another's question when the database comes back."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from support.fake_openai import answer
from support.fake_slack import BOT_USER, event_body, mention_event, post_event
from support.outage import (
    OUTAGE_TIMEOUT,
    STREAMED,
    RestartablePostgres,
    http_status,
    restartable_postgres,
    stream_then_wait,
)
from support.replicas import live_leases, run_cluster, wait_until
from support.slack_bot import QUESTION, VACATION_ANSWER

from bot.slack.answering import RESUMED

pytestmark = pytest.mark.slow  # replicas as processes through a PostgreSQL outage

LEASE_SECONDS = 4  # short: the outage outlasts it


@pytest.fixture(scope="module")
def postgres() -> Iterator[RestartablePostgres]:
    """A PostgreSQL server of this module's own: its test stops it."""
    with restartable_postgres() as server:
        yield server


def test_two_replicas_answer_each_question_once_through_an_outage_longer_than_a_lease(
    tmp_path: Path, postgres: RestartablePostgres, embedder
) -> None:
    env = {"QWENBOT_CLAIM_LEASE_SECONDS": str(LEASE_SECONDS)}
    with run_cluster(tmp_path, postgres.url, 2, embedder, **env) as cluster:
        slack, replicas = cluster.slack, cluster.replicas
        health = [r.url.replace("/slack/events", "/healthz") for r in replicas]
        gate = threading.Event()
        cluster.llm.push(stream_then_wait(STREAMED, gate), *[answer(VACATION_ANSWER) for _ in range(3)])
        channels = [f"C0OUT{i}" for i in range(4)]
        bodies = []
        for i, channel in enumerate(channels):
            text = f"<@{BOT_USER}> {QUESTION}"
            bodies.append(event_body(mention_event(channel, f"U0OUT{i}", text, slack.add_message(channel, "U0", text))))

        # the first question is being written by replica 0 when the database goes down
        assert post_event(replicas[0].url, bodies[0]).status == 200
        wait_until(cluster, lambda: any(m.streaming and m.text for m in slack.bot_messages(channels[0])), 60)
        postgres.stop()
        stopped = time.monotonic()
        gate.set()
        # the others come during the outage, to either replica: refused (Slack delivers them again) or held
        refused = [i for i in (1, 2, 3) if post_event(replicas[i % 2].url, bodies[i]).status == 503]
        wait_until(cluster, lambda: all(http_status(h) == 503 for h in health), OUTAGE_TIMEOUT)
        wait_until(cluster, lambda: time.monotonic() > stopped + 3 * LEASE_SECONDS, OUTAGE_TIMEOUT)

        postgres.start()
        wait_until(cluster, lambda: all(http_status(h) == 200 for h in health), OUTAGE_TIMEOUT)
        for i in refused:  # Slack's retry lands on whichever replica
            assert post_event(replicas[(i + 1) % 2].url, bodies[i], retry_num=1).status == 200

        def finished(channel: str) -> list[str]:
            return [m.text for m in slack.bot_messages(channel) if not m.streaming]

        wait_until(cluster, lambda: all(finished(c) for c in channels), OUTAGE_TIMEOUT)
        # every lease ended by the replica that held it: once none is left, none can be taken over
        wait_until(cluster, lambda: live_leases(cluster) == [], OUTAGE_TIMEOUT)
        with psycopg.connect(cluster.state_url) as conn:
            assert conn.execute("SELECT COALESCE(SUM(takeovers), 0) FROM claims").fetchall() == [(0,)]
        texts = {c: finished(c) for c in channels}
        assert texts[channels[0]] == ["".join(STREAMED)], texts
        assert all(t == ["".join(VACATION_ANSWER)] for c, t in texts.items() if c != channels[0]), texts
        assert not any(RESUMED in t for ts in texts.values() for t in ts)
        assert len(cluster.llm.bodies) == len(channels)

"""Three `qwenbot run --http` replicas sharing one real PostgreSQL and one real `chroma run` server, as
behind a load balancer: Slack's retries land on other replicas, replicas die mid-answer, and each
runs the re-index schedule. Every question is answered exactly once."""

from __future__ import annotations

import random
import re
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from support.fake_openai import answer, keep_alive_after
from support.fake_slack import BOT_USER, event_body, mention_event, post_event
from support.outage import http_status
from support.replicas import Cluster, answers_in, live_leases, run_cluster, wait_until
from support.slack_bot import QUESTION, VACATION_ANSWER

from bot.slack.answering import RESUMED

pytestmark = pytest.mark.slow  # three `qwenbot run --http` processes, a PostgreSQL and a Chroma server

LEASE_SECONDS = 4  # short, so the test of a dead replica does not wait long
REINDEX_MINUTES = 0.1  # a re-index cycle every 6 s


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, postgres_server: str, embedder) -> Iterator[Cluster]:
    env = {
        "QWENBOT_CLAIM_LEASE_SECONDS": str(LEASE_SECONDS),
        "QWENBOT_REINDEX_INTERVAL_MINUTES": str(REINDEX_MINUTES),
    }
    with run_cluster(tmp_path_factory.mktemp("replicas"), postgres_server, 3, embedder, **env) as running:
        yield running


def _logged(cluster: Cluster, pattern: str) -> list[str]:
    return [m for r in cluster.replicas for m in re.findall(pattern, r.text())]


def test_50_events_each_retried_on_another_replica_are_answered_exactly_once(cluster: Cluster) -> None:
    n = 50
    slack, replicas = cluster.slack, cluster.replicas
    cluster.llm.push(*[answer(VACATION_ANSWER) for _ in range(n)])
    channels = [f"C0REP{i:03d}" for i in range(n)]
    bodies = []
    for i, channel in enumerate(channels):
        text = f"<@{BOT_USER}> {QUESTION}"
        ts = slack.add_message(channel, f"U0REP{i:03d}", text)
        bodies.append(event_body(mention_event(channel, f"U0REP{i:03d}", text, ts)))
    rng = random.Random(11)
    first = [rng.randrange(3) for _ in bodies]
    retry = [rng.choice([j for j in range(3) if j != f]) for f in first]  # always another replica
    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        acks = list(pool.map(lambda i: post_event(replicas[first[i]].url, bodies[i]).status, range(n)))
        # Slack resends when it thinks a delivery failed: the retry reaches whichever replica it reaches
        acks += list(pool.map(lambda i: post_event(replicas[retry[i]].url, bodies[i], retry_num=1).status, range(n)))
    assert acks == [200] * (2 * n)
    wait_until(cluster, lambda: sum(len(answers_in(slack, c)) for c in channels) >= n, timeout=120)
    # every delivery has been decided: one of each pair answered, the other was refused as a duplicate
    wait_until(cluster, lambda: len(_logged(cluster, r"event (Ev\d+) already handled")) >= n, timeout=60)
    elapsed = time.monotonic() - started
    per_channel = [len(answers_in(slack, c)) for c in channels]
    apologies = [m for c in channels for m in slack.bot_messages(c) if "Sorry" in m.text]
    print(
        f"\n{2 * n} deliveries ({n} events + {n} retries) to 3 replicas: {sum(per_channel)} answers, "
        f"{sum(c - 1 for c in per_channel if c > 1)} duplicates, {len(apologies)} apologies in {elapsed:.1f} s"
    )
    assert per_channel == [1] * n
    assert apologies == []
    assert sorted(_logged(cluster, r"event (Ev\d+) already handled")) == sorted(b["event_id"] for b in bodies)
    assert len(cluster.llm.bodies) == n  # the model was asked once per question


def test_one_replica_indexes_per_cycle(cluster: Cluster) -> None:
    """All three run the re-index schedule; for each cycle exactly one of them indexes."""

    def indexed_by() -> dict[str, set[int]]:
        cycles: dict[str, set[int]] = {}
        for i, replica in enumerate(cluster.replicas):
            for cycle, line in re.findall(r"index \(scheduled, cycle (\d+)\)(.*)", replica.text()):
                if not line.startswith(" skipped"):  # "index (...) skipped: another replica is indexing"
                    cycles.setdefault(cycle, set()).add(i)
        return cycles

    wait_until(cluster, lambda: len(indexed_by()) >= 3, timeout=60)
    assert all(len(replicas) == 1 for replicas in indexed_by().values()), indexed_by()


def test_healthz_is_not_ready_while_the_state_database_is_unreachable(cluster: Cluster) -> None:
    health = cluster.replicas[1].url.replace("/slack/events", "/healthz")
    assert http_status(health) == 200
    database = cluster.state_url.rsplit("/", 1)[1]
    admin = cluster.state_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        # the database goes away for the bots: new connections refused, the open ones cut
        conn.execute(f"ALTER DATABASE {database} ALLOW_CONNECTIONS false")
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (database,))
        try:
            assert http_status(health) == 503  # no claim possible: the load balancer sends Slack elsewhere
        finally:
            conn.execute(f"ALTER DATABASE {database} ALLOW_CONNECTIONS true")
    # back by itself: the pool reconnects with backoff (1 s, 2 s, ...), so ready again within seconds; every
    # replica saw the outage (each refuses Slack's events until it sees the database back)
    healths = [r.url.replace("/slack/events", "/healthz") for r in cluster.replicas]
    wait_until(cluster, lambda: all(http_status(h) == 200 for h in healths), timeout=30)


def test_a_replica_killed_mid_answer_has_its_question_answered_once_after_the_lease(cluster: Cluster) -> None:
    slack, victim = cluster.slack, cluster.replicas[0]
    ended = threading.Event()
    # the first answer never finishes streaming (the replica dies under it); the next one is instant
    cluster.llm.push(keep_alive_after(["Full-time employees "], ended), answer(VACATION_ANSWER))
    channel, text = "C0KILL", f"<@{BOT_USER}> {QUESTION}"
    ts = slack.add_message(channel, "U0KILL", text)
    asked = len(cluster.llm.bodies)
    assert post_event(victim.url, event_body(mention_event(channel, "U0KILL", text, ts))).status == 200
    # the victim is writing the answer: the model was asked and the stream is open
    wait_until(
        cluster,
        lambda: (
            len(cluster.llm.bodies) > asked
            and [c for c in slack.calls_to("chat.startStream") if c.args.get("channel") == channel]
        ),
        timeout=60,
    )
    victim.proc.send_signal(signal.SIGKILL)
    victim.proc.wait(10)
    killed = time.monotonic()
    [final] = wait_until(cluster, lambda: answers_in(slack, channel), timeout=60)
    waited = time.monotonic() - killed
    assert LEASE_SECONDS * 0.5 < waited < LEASE_SECONDS + 30
    messages = [m.text for m in slack.bot_messages(channel) if not m.streaming]
    assert messages == [RESUMED, final.text]  # said so, then answered once
    # nothing is left claimed forever: the lease is released once the answer is posted (after it, so a
    # replica dying between the two still leaves the question to be resumed), so it is waited for
    wait_until(cluster, lambda: live_leases(cluster) == [], timeout=30)
    assert len(answers_in(slack, channel)) == 1

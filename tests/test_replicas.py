"""Three `qwenbot run --http` replicas sharing one real PostgreSQL and one real `chroma run` server, as
behind a load balancer: Slack's retries land on other replicas, replicas die mid-answer, and each
runs the re-index schedule. Every question is answered exactly once."""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fake_openai import FakeOpenAI, answer, keep_alive_after
from fake_slack import BOT_TOKEN, BOT_USER, SIGNING_SECRET, FakeSlack, Message, event_body, mention_event, post_event
from servers import chroma, new_database
from test_slack_app import QUESTION, VACATION_ANSWER

from bot.slack.answering import RESUMED
from retrieval.config import IndexConfig
from retrieval.indexer import Indexer

ROOT = Path(__file__).resolve().parent.parent
ANSWER_TEXT = "".join(VACATION_ANSWER)
LEASE_SECONDS = 4  # short, so the test of a dead replica does not wait long
REINDEX_MINUTES = 0.1  # a re-index cycle every 6 s


@dataclass
class Replica:
    proc: subprocess.Popen[str]
    log: list[str]
    url: str = ""

    def text(self) -> str:
        return "".join(self.log)


@dataclass
class Cluster:
    slack: FakeSlack
    llm: FakeOpenAI
    state_url: str
    replicas: list[Replica]


@contextmanager
def run_cluster(tmp: Path, server_url: str, replicas: int, embedder=None, **env: str) -> Iterator[Cluster]:
    """`replicas` bots on a fresh database of the PostgreSQL at `server_url`, a Chroma server holding
    a small corpus, a fake Slack and a scripted model; every process is stopped at the end."""
    docs = tmp / "docs"
    docs.mkdir()
    for name in ("vacation.md", "sick-leave.md", "remote-work.md"):  # a small corpus: a fast start
        shutil.copy(ROOT / "docs_corpus" / "hr" / name, docs / name)
    state_url = new_database(server_url)
    with chroma(tmp) as chroma_port, FakeSlack() as slack, FakeOpenAI() as llm:
        config = IndexConfig(index_dir=tmp / "indexer", chroma_host="127.0.0.1", chroma_port=chroma_port)
        assert Indexer(config, embedder).run([docs], progress=False).failed == 0
        environ = {
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "QWENBOT_SLACK_API_URL": slack.api_url,
            "QWENBOT_LLM_BASE_URL": llm.url,
            "QWENBOT_LLM_RETRIES": "0",
            "QWENBOT_DOCS_DIR": str(docs),
            "QWENBOT_CHROMA_HOST": "127.0.0.1",
            "QWENBOT_CHROMA_PORT": str(chroma_port),
            "QWENBOT_STATE_URL": state_url,
            "QWENBOT_RATE_LIMIT_PER_MINUTE": "0",
            "QWENBOT_INDEX_ON_START": "false",  # indexed above, once
            **env,
        }
        started = [start_replica(tmp / f"replica{i}", environ) for i in range(replicas)]
        try:
            for replica in started:
                replica.url = wait_listening(replica)
            yield Cluster(slack, llm, state_url, started)
        finally:
            for replica in started:
                if replica.proc.poll() is None:
                    replica.proc.kill()
                    replica.proc.wait()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, postgres_server: str, embedder) -> Iterator[Cluster]:
    env = {
        "QWENBOT_CLAIM_LEASE_SECONDS": str(LEASE_SECONDS),
        "QWENBOT_REINDEX_INTERVAL_MINUTES": str(REINDEX_MINUTES),
    }
    with run_cluster(tmp_path_factory.mktemp("replicas"), postgres_server, 3, embedder, **env) as running:
        yield running


def start_replica(folder: Path, env: dict[str, str]) -> Replica:
    """`qwenbot run --http` in a process of its own, with a local folder of its own (as a container)."""
    folder.mkdir()
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("QWENBOT_", "SLACK_"))}
    environ.update(env, QWENBOT_INDEX_DIR=str(folder / "index"), QWENBOT_STATE_DB=str(folder / "unused.sqlite3"))
    command = [sys.executable, "-m", "bot.cli", "--env-file", os.devnull, "run", "--http"]
    command += ["--host", "127.0.0.1", "--port", "0"]
    proc = subprocess.Popen(command, cwd=ROOT, env=environ, stderr=subprocess.PIPE, text=True)
    replica = Replica(proc, [])
    stderr = proc.stderr
    assert stderr is not None
    threading.Thread(target=lambda: replica.log.extend(iter(stderr.readline, "")), daemon=True).start()
    return replica


def wait_listening(replica: Replica, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while True:
        found = re.search(r"Events API on http://[\d.]+:(\d+)/", replica.text())
        if found:
            return f"http://127.0.0.1:{found.group(1)}/slack/events"
        assert replica.proc.poll() is None and time.monotonic() < deadline, replica.text()[-3000:]
        time.sleep(0.1)


def wait_until(cluster: Cluster, condition: Callable[[], Any], timeout: float) -> Any:
    """Waits for `condition()` to be truthy (returns it); on timeout, fails with the replicas' logs."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, "\n\n".join(r.text()[-3000:] for r in cluster.replicas)
        time.sleep(0.1)
    return value


def answers_in(slack: FakeSlack, channel: str) -> list[Message]:
    return [m for m in slack.bot_messages(channel) if not m.streaming and m.text.startswith(ANSWER_TEXT)]


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
    assert _status(health) == 200
    database = cluster.state_url.rsplit("/", 1)[1]
    admin = cluster.state_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        # the database goes away for the bots: new connections refused, the open ones cut
        conn.execute(f"ALTER DATABASE {database} ALLOW_CONNECTIONS false")
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (database,))
        try:
            assert _status(health) == 503  # no claim possible: the load balancer sends Slack elsewhere
        finally:
            conn.execute(f"ALTER DATABASE {database} ALLOW_CONNECTIONS true")
    # back by itself: the pool reconnects with backoff (1 s, 2 s, ...), so ready again within seconds; every
    # replica saw the outage (each refuses Slack's events until it sees the database back)
    healths = [r.url.replace("/slack/events", "/healthz") for r in cluster.replicas]
    wait_until(cluster, lambda: all(_status(h) == 200 for h in healths), timeout=30)


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


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
    wait_until(cluster, lambda: _live_leases(cluster) == [], timeout=30)
    assert len(answers_in(slack, channel)) == 1


def _live_leases(cluster: Cluster) -> list[tuple[str]]:
    with psycopg.connect(cluster.state_url) as conn:
        return conn.execute("SELECT key FROM claims WHERE lease_until IS NOT NULL").fetchall()

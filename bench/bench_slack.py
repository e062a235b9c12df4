"""The bot's own overhead in Slack: from an event arriving to its first Slack call, and to the final reply.

Runs the real app over HTTP with signed events, the real answer pipeline over a real index, an
OpenAI-compatible model that answers with zero delay, and a Slack Web API stub that answers at once and
timestamps every call (bench/harness.py). So the figures are the bot's overhead: ack, dedupe, status,
retrieval (embedding the question, hybrid search), prompt assembly, streaming and rendering.

    .venv/bin/python bench/bench_slack.py [-n 30] [--concurrency 1] [--index-dir DIR]

Without --index-dir it uses QWENBOT_INDEX_DIR when that index exists, else indexes docs_corpus/
into a temporary folder first (a minute or two on a laptop CPU).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

from harness import BOT_TOKEN, SIGNING_SECRET, ModelStub, SlackStub, post_mention  # noqa: E402

from bot.runtime import BotRuntime  # noqa: E402
from bot.settings import load_settings  # noqa: E402
from bot.slack.http import HttpServer  # noqa: E402
from retrieval.indexer import Indexer  # noqa: E402
from retrieval.store import index_exists  # noqa: E402

CORPUS = Path(__file__).resolve().parent.parent / "docs_corpus"
QUESTIONS = [
    "How many vacation days do I get per year?",
    "How do I connect to the VPN from home?",
    "What should I do if I lose my laptop?",
    "Who do I page for a production incident?",
    "How do I request access to a production database?",
]
PIECES = ["Full-time employees get ", "**25 days** of paid vacation ", "per calendar year [1]."]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=30, help="events to send")
    parser.add_argument("--concurrency", type=int, default=1, help="events in flight at once")
    parser.add_argument("--index-dir", type=Path, default=None)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        base = load_settings(None)
        index_dir = args.index_dir or base.index_dir
        if args.index_dir is None and not index_exists(base.index_config()):
            index_dir = Path(tmp) / "index"
            print(f"indexing {CORPUS} into a temporary folder...", file=sys.stderr)
            Indexer(base.index_config(index_dir)).run([CORPUS], progress=False)
        with SlackStub() as slack, ModelStub(PIECES) as llm:
            settings = load_settings(
                None,
                index_dir=index_dir,
                state_db=Path(tmp) / "state.sqlite3",
                slack_api_url=slack.api_url,
                slack_bot_token=BOT_TOKEN,
                slack_signing_secret=SIGNING_SECRET,
                llm_base_url=llm.url,
                rate_limit_per_minute=0,
                log_level="WARNING",
            )
            runtime = BotRuntime(settings)
            server = HttpServer(runtime.app, "127.0.0.1", 0, runtime.health)
            server.start()
            url = f"http://127.0.0.1:{server.port}/slack/events"
            try:
                rows = run(slack, url, args.n, args.concurrency)
            finally:
                server.stop()
                runtime.close()
    report(rows, args.n, args.concurrency)
    return 0


def run(slack: SlackStub, url: str, n: int, concurrency: int) -> list[tuple[float, ...]]:
    def one(i: int) -> tuple[float, ...]:
        channel = f"C0BENCH{i:03d}"
        sent = time.monotonic()
        status, acked = post_mention(url, channel, "U0BENCH", QUESTIONS[i % len(QUESTIONS)], slack.new_ts())
        assert status == 200, status
        final = slack.wait_for(lambda: slack.calls_in(channel, "chat.stopStream"), timeout=120)[0].at
        first = slack.calls_in(channel)[0].at
        text_at = slack.calls_in(channel, "chat.startStream")[0].at
        return acked, first - sent, text_at - sent, final - sent

    one(n)  # one warm-up question: loads the embedding model and opens connections, not what a user waits for
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return list(pool.map(one, range(n)))


def report(rows: list[tuple[float, ...]], n: int, concurrency: int) -> None:
    print(f"qwenbot Slack overhead: {n} mentions, {concurrency} at a time, zero-delay scripted model")
    print(f"{'':32} {'p50':>8} {'p95':>8} {'max':>8}")
    labels = ["HTTP ack", "event -> first Slack call", "event -> first answer text", "event -> final reply"]
    for label, values in zip(labels, zip(*rows, strict=True), strict=True):
        ms = [v * 1000 for v in values]
        print(f"{label:32} {percentile(ms, 50):7.0f}ms {percentile(ms, 95):7.0f}ms {max(ms):7.0f}ms")
    print(
        f"(mean event -> final reply {statistics.mean(r[3] for r in rows) * 1000:.0f} ms; it includes "
        "embedding the question and the hybrid search)"
    )


if __name__ == "__main__":
    sys.exit(main())

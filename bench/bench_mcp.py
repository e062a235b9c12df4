"""What the MCP protocol adds to a search: `search_docs` over streamable HTTP (`qwenbot mcp --http`, with its
bearer token, through the SDK's own client) beside the same search in-process, p50/p95 over the same calls.

    python bench/bench_mcp.py [--calls 200] [--index-dir DIR]

The index is docs_corpus/ (built in DIR, or a temporary folder; reused when DIR holds it already); the
queries are docs_corpus/questions.jsonl, cycled to --calls. The server serves the index; this process
searches a copy of it in-process and calls the server through one MCP session over one connection, each
query one way then the other (k=6, as the bot searches), so both see the same load on shared cores.
Target: the protocol adds <= 5 ms at p50 (the median of the paired differences).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

import httpx2  # noqa: E402
from mcp import ClientSession  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402

from bot.mcp.auth import new_token  # noqa: E402
from retrieval.config import IndexConfig  # noqa: E402
from retrieval.evaluation import percentile  # noqa: E402
from retrieval.indexer import Indexer  # noqa: E402
from retrieval.models import SearchFilter  # noqa: E402
from retrieval.search import Searcher  # noqa: E402
from retrieval.store import index_exists  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "docs_corpus"
K = 6
WARM_UP = 20
TARGET_MS = 5.0


def queries(calls: int) -> list[str]:
    lines = (CORPUS / "questions.jsonl").read_text(encoding="utf-8").splitlines()
    asked = [json.loads(line)["question"] for line in lines if line.strip()]
    return [asked[i % len(asked)] for i in range(calls)]


async def interleaved(searcher: Searcher, url: str, token: str, asked: list[str]) -> tuple[list[float], list[float]]:
    """Each query in-process, then over MCP, in turn: both sides see the same load (the cores are shared),
    so the difference is the protocol's, not the machine's from one minute to the next."""
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as client,
        streamable_http_client(url, http_client=client) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        local: list[float] = []
        remote: list[float] = []
        for i, query in enumerate(asked[:WARM_UP] + asked):
            start = time.perf_counter()
            searcher.search(query, k=K)
            middle = time.perf_counter()
            got = await session.call_tool("search_docs", {"query": query, "k": K})
            end = time.perf_counter()
            if got.is_error:
                raise SystemExit(f"search_docs failed: {got.content}")
            if i >= WARM_UP:
                local.append((middle - start) * 1000)
                remote.append((end - middle) * 1000)
        return local, remote


@contextmanager
def serving(index_dir: Path, folder: Path) -> Iterator[tuple[str, str]]:
    """`qwenbot mcp --http` on the index until the block ends, ready (/healthz); (its URL, a token)."""
    token, line = new_token("bench", SearchFilter())
    (folder / "tokens.yml").write_text(line + "\n", encoding="utf-8")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QWENBOT_", "SLACK_"))}
    env |= {"QWENBOT_INDEX_DIR": str(index_dir), "QWENBOT_MCP_TOKENS_FILE": str(folder / "tokens.yml")}
    env["QWENBOT_LOG_LEVEL"] = "WARNING"  # a line per call is the server's normal work, not this bench's
    env["QWENBOT_MCP_RATE_LIMIT_PER_MINUTE"] = "0"  # the bench calls faster than an agent is let
    command = [str(Path(sys.executable).with_name("qwenbot")), "--env-file", os.devnull, "mcp", "--http"]
    process = subprocess.Popen([*command, "--port", str(port)], env=env, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("qwenbot mcp --http did not come up")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                    break
            except OSError:
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/mcp", token
    finally:
        process.terminate()
        process.wait(timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--index-dir", type=Path, default=None, help="keep (and reuse) the docs_corpus index here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_mcp_") as tmp:
        index_dir = args.index_dir or Path(tmp) / "index"
        config = IndexConfig(index_dir=index_dir)
        if not index_exists(config):
            print(f"indexing {CORPUS} into {index_dir}...", file=sys.stderr)
            Indexer(config).run([CORPUS], progress=False)
        asked = queries(args.calls)
        # the server holds its index folder: the in-process side searches a copy of it
        shutil.copytree(index_dir, Path(tmp) / "copy", ignore=shutil.ignore_patterns(".lock", "control.*"))
        with serving(index_dir, Path(tmp)) as (url, token), Searcher(IndexConfig(index_dir=Path(tmp) / "copy")) as s:
            local, remote = asyncio.run(interleaved(s, url, token, asked))
    print(f"search_docs, k={K}, {len(asked)} calls after {WARM_UP} to warm up (ms):")
    print(f"{'':<28}{'p50':>8}{'p95':>8}")
    for name, times in (("in-process Searcher.search", local), ("MCP over streamable HTTP", remote)):
        print(f"{name:<28}{percentile(times, 50):>8.1f}{percentile(times, 95):>8.1f}")
    added = percentile([r - loc for r, loc in zip(remote, local, strict=True)], 50)
    verdict = "within" if added <= TARGET_MS else "OVER"
    print(f"the protocol adds {added:.1f} ms at p50, paired ({verdict} the {TARGET_MS:.0f} ms target)")
    return 0 if added <= TARGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())

"""Re-syncing an unchanged source costs at most 2% of its first sync (issue 22), index step included.

    python bench/bench_sources.py [--docs N] [--case NAME ...]

For each case: a source of N generated documents (default 1,000) is synced once into an empty mirror,
state and index (the first sync: fetch, mirror, embed and index everything), then synced again with
nothing changed at the source. Printed per case: both syncs' seconds and requests (git commands, HTTP
calls), and the re-sync's share of the first. Target: <= 0.02 of the time (and of the requests).

A case is a function `case_NAME(folder, docs) -> SourceSpec` (a context manager: it serves the source
while the syncs run) listed in CASES: the git case commits the documents to a repository served by
`git daemon` on a loopback port; the website case serves N HTML pages and a sitemap (with lastmod) from
http.server on one. The model is loaded before anything is timed; each sync builds its
connector, SourceSync and Indexer afresh, as the bot does.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

from bot.state import State  # noqa: E402
from retrieval.config import IndexConfig  # noqa: E402
from retrieval.embeddings import Embedder, embedder_for  # noqa: E402
from retrieval.indexer import Indexer  # noqa: E402
from retrieval.models import IndexStats  # noqa: E402
from retrieval.sources.registry import connector_for  # noqa: E402
from retrieval.sources.spec import SourceSpec  # noqa: E402
from retrieval.sources.sync import SourceSync, SyncReport  # noqa: E402

TOPICS = ["vpn", "leave", "laptops", "expenses", "onboarding", "security", "travel", "payroll", "parking", "wiki"]


def document(i: int) -> str:
    """A small handbook page, different for every i (one or two chunks)."""
    topic = TOPICS[i % len(TOPICS)]
    return (
        f"---\ntitle: {topic.title()} guide {i}\n---\n# {topic.title()} guide {i}\n\n"
        f"This page explains {topic} rule number {i} for the team in office {i % 37}. "
        f"Ask the {topic} owners in channel #{topic}-{i % 11} when something is unclear.\n\n"
        f"## Details\n\nStep {i}: open the {topic} portal, choose option {i % 7}, and confirm with code {i * 7919}.\n"
    )


@contextmanager
def case_git(folder: Path, docs: int) -> Iterator[SourceSpec]:
    """N Markdown files in one commit, served by `git daemon` on loopback."""
    repo = folder / "served" / "handbook"
    (repo / "docs").mkdir(parents=True)
    for i in range(docs):
        (repo / "docs" / TOPICS[i % len(TOPICS)]).mkdir(exist_ok=True)
        (repo / "docs" / TOPICS[i % len(TOPICS)] / f"page-{i:04d}.md").write_text(document(i))
    env = os.environ | {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "b@example.com"}
    env |= {"GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "b@example.com"}
    for command in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "docs"]):
        subprocess.run(["git", *command], cwd=repo, env=env, check=True)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    daemon = ["git", "daemon", "--export-all", f"--base-path={folder / 'served'}", "--listen=127.0.0.1"]
    proc = subprocess.Popen([*daemon, f"--port={port}", "--reuseaddr"], stderr=subprocess.DEVNULL)
    url = f"git://127.0.0.1:{port}/handbook"
    try:
        deadline = time.monotonic() + 30
        while subprocess.run(["git", "ls-remote", url], capture_output=True).returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError("git daemon did not start")
            time.sleep(0.05)
        yield SourceSpec("handbook", "git", {"url": url, "path": "docs", "web_url": "https://git.example.com/{path}"})
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def web_page(i: int) -> str:
    """document(i) as a docs site's page: a nav bar linking its neighbours, the article, a footer."""
    topic = TOPICS[i % len(TOPICS)]
    nav = "".join(f'<li><a href="page-{j:04d}.html">Page {j}</a></li>' for j in range(max(0, i - 3), i + 4) if j != i)
    return (
        f"<!doctype html><html><head><title>{topic.title()} guide {i}</title></head><body><nav><ul>{nav}</ul></nav>"
        f"<main><article><h1>{topic.title()} guide {i}</h1><p>This page explains {topic} rule number {i} for the "
        f"team in office {i % 37}. Ask the {topic} owners in channel #{topic}-{i % 11} when something is unclear.</p>"
        f"<h2>Details</h2><p>Step {i}: open the {topic} portal, choose option {i % 7}, and confirm with code "
        f"{i * 7919}.</p></article></main><footer><p>Example Corp, all rights reserved.</p></footer></body></html>"
    )


class _QuietFiles(SimpleHTTPRequestHandler):
    """http.server's file handler (Last-Modified, 304 to If-Modified-Since), without a log line a request."""

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@contextmanager
def case_website(folder: Path, docs: int) -> Iterator[SourceSpec]:
    """N HTML pages under /docs/ with a sitemap.xml (lastmod) and a robots.txt, served by http.server."""
    site = folder / "site"
    (site / "docs").mkdir(parents=True)
    (site / "robots.txt").write_text("User-agent: *\nDisallow: /admin/\n")
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietFiles, directory=str(site)))
    base = f"http://127.0.0.1:{server.server_address[1]}"
    entries = []
    for i in range(docs):
        (site / "docs" / f"page-{i:04d}.html").write_text(web_page(i))
        entries.append(
            f"<url><loc>{base}/docs/page-{i:04d}.html</loc><lastmod>2026-11-{1 + i % 28:02d}</lastmod></url>"
        )
    urlset = '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">' + "".join(entries) + "</urlset>"
    (site / "sitemap.xml").write_text('<?xml version="1.0" encoding="UTF-8"?>' + urlset)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        settings = {"sitemap_url": f"{base}/sitemap.xml", "allowed_prefix": f"{base}/docs/"}
        # a local server: the request rate cap (2 a second by default) would time the sleeps, not the sync
        yield SourceSpec("site", "website", settings | {"requests_per_second": 10_000, "max_pages": docs})
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


CASES: dict[str, Callable[[Path, int], AbstractContextManager[SourceSpec]]] = {
    "git": case_git,
    "website": case_website,
}


@dataclass
class Timed:
    seconds: float
    report: SyncReport


def sync_once(spec: SourceSpec, folder: Path, state: State, embedder: Embedder) -> Timed:
    """One sync as the bot runs it: connector, engine and indexer built for it, the model already loaded."""
    config = IndexConfig(index_dir=folder / "index")
    (folder / "docs").mkdir(exist_ok=True)

    def index(mirror: Path) -> IndexStats:
        return Indexer(config, embedder, docs_dir=folder / "docs").run([mirror], progress=False, add_root=spec.name)

    started = time.perf_counter()
    connector = connector_for(spec, folder / "sources" / spec.name / "work")
    report = SourceSync(spec, connector, state.sources, folder / "sources" / spec.name / "mirror").run(index)
    return Timed(time.perf_counter() - started, report)


def run_case(name: str, docs: int, embedder: Embedder) -> None:
    with tempfile.TemporaryDirectory(prefix=f"bench-sources-{name}-") as tmp, CASES[name](Path(tmp), docs) as spec:
        state = State(Path(tmp) / "state.sqlite3")
        try:
            first = sync_once(spec, Path(tmp), state, embedder)
            again = sync_once(spec, Path(tmp), state, embedder)
        finally:
            state.close()
    assert first.report.added == docs and again.report.unchanged == docs, (first.report.notes, again.report)
    for label, timed in (("first sync", first), ("re-sync, unchanged", again)):
        index = timed.report.index
        embedded = index.chunks_embedded if index is not None else 0
        print(
            f"{name:8} {label:20} {timed.seconds:8.2f} s  {timed.report.requests:5d} requests  "
            f"{timed.report.documents} documents, {embedded} chunks embedded"
        )
    time_share = again.seconds / first.seconds
    request_share = again.report.requests / max(first.report.requests, 1)
    verdict = "ok" if time_share <= 0.02 else "OVER the 0.02 target"
    print(f"{name:8} re-sync / first sync: time {time_share:.4f}, requests {request_share:.4f} ({verdict})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--case", action="append", choices=sorted(CASES), help="default: every case")
    args = parser.parse_args(argv)
    embedder = embedder_for(IndexConfig(index_dir=Path(tempfile.gettempdir())))
    embedder.warm_up()
    for name in args.case or sorted(CASES):
        run_case(name, args.docs, embedder)
    return 0


if __name__ == "__main__":
    sys.exit(main())

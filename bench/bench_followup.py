"""Follow-up questions in threads: retrieval quality of each way of searching them, side by side.

    python bench/bench_followup.py [docs_corpus/conversations.jsonl] [--docs docs_corpus] [--store DIR]

For every turn that has a thread before it (a line with "history") it reports document-level nDCG@10
and Recall@5 when searching with (1) the last turn alone, (2) the previous user turn and the last turn
concatenated (the simple baseline), (3) `heuristic` mode, (4) `model` mode against a scripted
OpenAI-compatible server: "good" returns the line's hand-written "standalone" rewrite, "echo" returns
the question unchanged (a model that understood nothing). All through `AnswerPipeline.retrieve`, the
bot's one retrieval path; (1)-(2) are `off` mode with the query given. The heuristic is also run with
the bot turns cut to their answer text (no "Sources:" titles), as threads written elsewhere look.
Then, at the bot's own settings (top_k), how many unanswerable follow-ups (`"sources": []`) the
pipeline's decision (`Retrieved.answerable`) holds back, and how many answerable ones it wrongly does.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

from bot.answer.followup import rewrite_messages  # noqa: E402
from bot.answer.pipeline import AnswerPipeline, Retrieved  # noqa: E402
from bot.answer.prompts import estimate_tokens  # noqa: E402
from bot.answer.records import Turn  # noqa: E402
from bot.llm.client import build_client  # noqa: E402
from bot.settings import Settings, load_settings  # noqa: E402
from retrieval.evaluation import (  # noqa: E402
    RANK_K,
    RECALL_K,
    load_questions,
    ndcg_at_k,
    ranked_documents,
    recall_at_k,
)
from retrieval.indexer import Indexer  # noqa: E402
from retrieval.search import Searcher  # noqa: E402

DEPTH = 20  # passages ranked per question: enough documents for nDCG@10 (the bot itself reads top_k)


@dataclass(frozen=True)
class Line:
    id: str
    question: str
    sources: frozenset[str]
    history: tuple[Turn, ...]
    standalone: str  # the hand-written standalone rewrite of a follow-up ("" for first turns)


def load(path: Path) -> list[Line]:
    """The eval's question lines, with their threads as turns and the lines' "standalone" rewrites."""
    standalone = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            raw = json.loads(line)
            standalone[str(raw.get("id"))] = raw.get("standalone", "")
    return [
        Line(
            q.id,
            q.question,
            frozenset(q.sources),
            tuple(Turn("user" if role == "user" else "assistant", text) for role, text in q.history),
            standalone.get(q.id, ""),
        )
        for q in load_questions(path)
    ]


def without_titles(history: tuple[Turn, ...]) -> tuple[Turn, ...]:
    return tuple(Turn(t.role, t.text.split(" Sources: ")[0]) if t.role == "assistant" else t for t in history)


def echo(content: str) -> str:
    """A model that understood nothing: the last message back, unchanged."""
    return content.split("Last message: ", 1)[1].rsplit("\n\nStandalone query:", 1)[0]


# --- a scripted OpenAI-compatible server -------------------------------------------------------------


@contextmanager
def scripted_model(reply: Callable[[str], str]) -> Iterator[str]:
    """Serves /v1/chat/completions as one streamed reply: `reply(user message content)`. Yields the URL."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            text = reply(body["messages"][-1]["content"])
            chunks = [{"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}]
            chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
            data = "".join(
                f"data: {json.dumps({'id': 'x', 'object': 'chat.completion.chunk', **c})}\n\n" for c in chunks
            )
            payload = (data + "data: [DONE]\n\n").encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


# --- measuring -------------------------------------------------------------------------------------


@dataclass
class Row:
    name: str
    ndcg: float
    recall: float
    ms: float  # mean time of pipeline.retrieve (rewrite call included)


def measure(name: str, turns: list[Line], retrieve: Callable[[Line], Retrieved]) -> Row:
    ndcg = recall = seconds = 0.0
    for t in turns:
        start = time.perf_counter()
        found = retrieve(t)
        seconds += time.perf_counter() - start
        ranked = ranked_documents(found.ranking)
        ndcg += ndcg_at_k(ranked, set(t.sources), RANK_K)
        recall += recall_at_k(ranked, set(t.sources), RECALL_K)
    n = len(turns)
    return Row(name, ndcg / n, recall / n, 1000 * seconds / n)


def asking(p: AnswerPipeline) -> Callable[[Line], Retrieved]:
    """Retrieval for a line, with its thread, as the bot does it."""
    return lambda t: p.retrieve(t.question, t.history, depth=DEPTH)


def pipeline(settings: Settings, searcher: Searcher, **overrides: Any) -> AnswerPipeline:
    s = settings.model_copy(update=overrides)
    return AnswerPipeline(s.answer_config(), searcher, build_client(s.llm_config()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("conversations", type=Path, nargs="?", default=Path("docs_corpus/conversations.jsonl"))
    parser.add_argument("--docs", type=Path, default=Path("docs_corpus"))
    parser.add_argument("--store", type=Path, default=Path("/tmp/qwenbot-bench-followup"), help="index folder, reused")
    args = parser.parse_args()

    turns = load(args.conversations)
    follow_ups = [t for t in turns if t.history]
    answerable = [t for t in follow_ups if t.sources]
    settings = load_settings(None, index_dir=args.store, llm_base_url=None)
    stats = Indexer(settings.index_config()).run([args.docs], progress=False)
    print(f"index {args.store}: {stats.failed} failed; {len(turns)} turns, {len(follow_ups)} follow-ups "
          f"({len(answerable)} answerable)", file=sys.stderr)  # fmt: skip
    good = {rewrite_messages(t.question, t.history)[-1]["content"]: t.standalone for t in follow_ups}

    rows: list[Row] = []
    with Searcher(settings.index_config()) as searcher:
        off = pipeline(settings, searcher, query_rewrite="off")
        heuristic = pipeline(settings, searcher, query_rewrite="heuristic")
        rows.append(measure("(1) last turn only", answerable, asking(off)))
        previous = {t.id: next(h.text for h in reversed(t.history) if h.role == "user") for t in answerable}
        rows.append(
            measure(
                "(2) previous user turn + last turn",
                answerable,
                lambda t: off.retrieve(f"{previous[t.id]} {t.question}", [], depth=DEPTH),
            )
        )
        rows.append(measure("(3) heuristic", answerable, asking(heuristic)))
        rows.append(
            measure(
                "(3) heuristic, bot turns without titles",
                answerable,
                lambda t: heuristic.retrieve(t.question, without_titles(t.history), depth=DEPTH),
            )
        )
        replies: dict[str, Callable[[str], str]] = {"good": good.__getitem__, "echo": echo}
        for label, reply in replies.items():
            with scripted_model(reply) as url:
                model = pipeline(settings, searcher, query_rewrite="model", llm_base_url=url)
                rows.append(measure(f"(4) model: {label}", answerable, asking(model)))

        print(f"\n{len(answerable)} answerable follow-ups in {args.conversations} (nDCG@{RANK_K}, Recall@{RECALL_K}):")
        print(f"{'mode':42s} {'nDCG@10':>8s} {'R@5':>6s} {'ms':>7s}")
        for row in rows:
            print(f"{row.name:42s} {row.ndcg:8.3f} {row.recall:6.3f} {row.ms:7.1f}")
        tokens = [
            sum(estimate_tokens(m["content"]) for m in rewrite_messages(t.question, t.history)) for t in follow_ups
        ]
        print(f"model mode's rewrite request: ~{sum(tokens) / len(tokens):.0f} prompt tokens (mean), <= 64 out")

        bot = pipeline(settings, searcher)  # the bot's own settings: top_k, default rewrite mode
        print(
            f"\nthe pipeline's decision (Retrieved.answerable), top_k {settings.top_k}, {settings.query_rewrite} mode:"
        )
        for label, group in (("first turns", [t for t in turns if not t.history]), ("follow-ups", follow_ups)):
            held = [t for t in group if not bot.retrieve(t.question, t.history).answerable]
            unanswerable = [t for t in group if not t.sources]
            caught = sum(1 for t in held if not t.sources)
            wrong = sum(1 for t in held if t.sources)
            print(
                f"  {label:11s}: unanswerable held back {caught}/{len(unanswerable)}, "
                f"answerable wrongly held back {wrong}/{len(group) - len(unanswerable)}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

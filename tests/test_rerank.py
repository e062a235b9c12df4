"""The optional rerank stage: rerank endpoints of both response shapes (a fake server), a local
CrossEncoder (a tiny random BERT built here, loaded by the real path), and the fallback to the fused
order when the reranker is down, slow or answers nonsense."""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from support.servers import POLL_INTERVAL, FakeHTTPServer, free_port

from bot.commands.doctor import _reranker_check
from bot.settings import load_settings
from retrieval.config import IndexConfig
from retrieval.indexer import Indexer
from retrieval.models import Hit
from retrieval.rerank import CrossEncoderReranker, HttpReranker, make_reranker
from retrieval.search import Searcher

QUERY = "how many vacation days carry over"


class FakeReranker:
    """A rerank endpoint. Scores a passage by its position (the last one best), so a reranked order is
    the fused order reversed. `shape`: "results" (vLLM, Infinity, Jina, Cohere) or "list" (TEI, which
    also insists on the field "texts"); "broken" answers with no scores; "slow" never answers in time."""

    def __init__(self, shape: str) -> None:
        self.shape = shape
        self.bodies: list[dict[str, Any]] = []
        self.release = threading.Event()  # lets a "slow" handler finish at teardown
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.bodies.append(body)
                if fake.shape == "slow":
                    fake.release.wait(10)
                    return
                field = "texts" if fake.shape == "list" else "documents"
                if field not in body:
                    self._send(422, {"error": f"missing field `{field}`"})
                    return
                scored = [{"index": i, "score": float(i)} for i in range(len(body[field]))]
                scored.sort(key=lambda r: r["score"], reverse=True)
                if fake.shape == "list":
                    self._send(200, scored)
                elif fake.shape == "broken":
                    self._send(200, {"results": [{"index": 0}]})
                else:
                    results = [{"index": r["index"], "relevance_score": r["score"]} for r in scored]
                    self._send(200, {"id": "rerank-1", "results": results[: body["top_n"]]})

            def _send(self, status: int, payload: object) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = FakeHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/rerank"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": POLL_INTERVAL})

    def __enter__(self) -> FakeReranker:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory, embedder) -> IndexConfig:
    docs = tmp_path_factory.mktemp("docs")
    sections = {
        "hr/vacation.md": ("Vacation", {"Allowance": "25 vacation days a year.", "Carry over": "5 days carry over."}),
        "hr/sick.md": ("Sick leave", {"Reporting": "Report sick days to your manager before 10am."}),
        "eng/oncall.md": ("On-call", {"Vacation": "Swap your on-call shift before vacation days."}),
        "it/laptops.md": ("Laptops", {"Refresh": "Laptops are replaced every three years."}),
    }
    for rel, (title, parts) in sections.items():
        path = docs / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"# {title}\n\n" + "\n\n".join(f"## {h}\n\n{t}" for h, t in parts.items()), encoding="utf-8")
    config = IndexConfig(index_dir=tmp_path_factory.mktemp("index"))
    assert Indexer(config, embedder).run([docs], progress=False).failed == 0
    return config


@pytest.fixture(scope="module")
def fused(index: IndexConfig, embedder) -> list[Hit]:
    with Searcher(index, embedder) as searcher:
        return searcher.search(QUERY, k=10)


@pytest.fixture
def searcher_for(index: IndexConfig, embedder) -> Iterator[Any]:
    opened: list[Searcher] = []

    def make(reranker: str, **options: Any) -> Searcher:
        opened.append(Searcher(dataclasses.replace(index, reranker=reranker, **options), embedder))
        return opened[-1]

    yield make
    for searcher in opened:
        searcher.close()


def ids(hits: list[Hit]) -> list[str]:
    return [h.chunk_id for h in hits]


@pytest.mark.parametrize("shape", ["results", "list"])
def test_an_endpoint_reorders_the_best_fused_chunks(shape: str, fused: list[Hit], searcher_for) -> None:
    assert len(fused) >= 5 and all(h.rerank_score is None for h in fused)
    with FakeReranker(shape) as server:
        searcher = searcher_for(server.url, rerank_candidates=4)
        first = searcher.search(QUERY, k=10)
        second = searcher.search(QUERY, k=3)
    # The 4 best fused chunks, reversed by the fake's scores; the rest after them in fused order.
    assert ids(first) == ids(fused[:4])[::-1] + ids(fused[4:])
    assert [h.rerank_score for h in first[:4]] == [3.0, 2.0, 1.0, 0.0]
    assert all(h.rerank_score is None for h in first[4:])
    assert ids(second) == ids(fused[:4])[::-1][:3]  # k below the candidates: still the reranked best
    sent = server.bodies[-1]
    assert sent["query"] == QUERY and sent["top_n"] == 4
    passages = sent.get("documents") or sent["texts"]
    assert passages[0] == f"{fused[0].title} > {fused[0].heading_path}\n{fused[0].text}"  # header, as embedded
    if shape == "list":
        # TEI's field is found on first contact (one 422), then used straight away.
        assert ["documents" in b for b in server.bodies] == [True, False, False]
    else:
        assert len(server.bodies) == 2


@pytest.mark.parametrize("trouble", ["down", "slow", "broken"])
def test_a_failing_endpoint_keeps_the_fused_order_with_one_warning(
    trouble: str, fused: list[Hit], searcher_for, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="retrieval.rerank")
    if trouble == "down":
        url = f"http://127.0.0.1:{free_port()}/rerank"
        searcher = searcher_for(url, rerank_timeout=0.5)
        results = [searcher.search(QUERY, k=10) for _ in range(3)]
    else:
        with FakeReranker(trouble) as server:
            searcher = searcher_for(server.url, rerank_timeout=0.3)
            results = [searcher.search(QUERY, k=10) for _ in range(3)]
        assert len(server.bodies) == 1  # after a failure the reranker rests: no timeout per question
    for hits in results:
        assert ids(hits) == ids(fused) and all(h.rerank_score is None for h in hits)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "fused order kept" in warnings[0].getMessage()
    assert warnings[0].exc_info is None  # one line, no traceback


def tiny_cross_encoder(folder: Path) -> Path:
    """A randomly initialised one-layer BERT cross-encoder saved as a model folder: no download."""
    # transformers 5: BertTokenizer is the fast (Rust) tokenizer, BertTokenizerFast an alias of it.
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    words = "vacation days carry over sick leave laptops on call swap shift how many a year report".split()
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n", encoding="utf-8")
    tokenizer = BertTokenizer(vocab_file=str(vocab))
    config = BertConfig(
        vocab_size=len(words) + 5,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=37,
    )
    config.num_labels = 1  # one relevance score per pair, as cross-encoders have
    model_dir = folder / "tiny-cross-encoder"
    BertForSequenceClassification(config).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    return model_dir


def test_a_local_cross_encoder_reranks(tmp_path: Path, fused: list[Hit], searcher_for) -> None:
    from sentence_transformers import CrossEncoder

    path = str(tiny_cross_encoder(tmp_path))
    hits = searcher_for(path, rerank_candidates=5).search(QUERY, k=10)
    expected = CrossEncoder(path).predict([(QUERY, f"{h.title} > {h.heading_path}\n{h.text}") for h in fused[:5]])
    by_id = {h.chunk_id: h.rerank_score for h in hits[:5]}
    assert set(by_id) == set(ids(fused[:5]))
    assert [by_id[h.chunk_id] for h in fused[:5]] == pytest.approx([float(s) for s in expected], abs=1e-5)
    assert [h.rerank_score for h in hits[:5]] == sorted(by_id.values(), reverse=True)
    assert ids(hits[5:]) == ids(fused[5:])


def test_a_model_that_cannot_load_is_skipped(fused: list[Hit], searcher_for, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="retrieval.rerank")
    searcher = searcher_for("no-such-org/no-such-reranker")  # not in the cache, and nothing downloads
    assert ids(searcher.search(QUERY, k=10)) == ids(fused)
    assert ids(searcher.search(QUERY, k=10)) == ids(fused)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "no-such-org/no-such-reranker" in warnings[0]


def test_the_setting_picks_the_kind(tmp_path: Path) -> None:
    assert make_reranker("", 3.0) is None and make_reranker("  ", 3.0) is None
    for url in ("http://vllm:8000/v1/rerank", "HTTPS://tei.internal/rerank"):
        endpoint = make_reranker(url, 3.0)
        assert isinstance(endpoint, HttpReranker) and endpoint.url == url and endpoint.timeout == 3.0
    secret = make_reranker("https://user:pw@rerank.example/rerank?key=abc", 3.0)
    assert secret is not None and secret.name == "https://rerank.example/rerank"  # what logs may show
    for model in ("BAAI/bge-reranker-v2-m3", str(tmp_path / "my-reranker")):
        local = make_reranker(model, 3.0)
        assert isinstance(local, CrossEncoderReranker) and local.name == model


def test_doctor_checks_a_configured_reranker() -> None:
    assert list(_reranker_check(load_settings(env_file=None))) == []  # off: no row
    with FakeReranker("results") as server:
        [check] = _reranker_check(load_settings(env_file=None, reranker=server.url))
    assert check.outcome == "pass" and server.url in check.detail
    [check] = _reranker_check(load_settings(env_file=None, reranker=f"http://127.0.0.1:{free_port()}/rerank"))
    assert check.outcome == "fail" and "QWENBOT_RERANKER" in check.fix

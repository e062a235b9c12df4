"""The embedding model run by ONNX Runtime: the same weights as sentence-transformers, about twice as fast.

Documents and queries both go through `OnnxEncoder.encode` (retrieval/embeddings.py picks this runtime
or sentence-transformers). Only BERT-style models with mean pooling (all-MiniLM-L6-v2 and its kin) take
this path (`unsupported_reason` says why another does not); the embedder falls back to
sentence-transformers for them. The graph itself is exported once per machine by onnx_export.py.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np

from retrieval.onnx_export import default_cache_dir, exported_model


class OnnxEncoder:
    """Encodes texts into L2-normalised float32 vectors with an ONNX Runtime session."""

    def __init__(self, session: Any, tokenizer: Any, quantize: str) -> None:
        self._session = session
        self._tokenizer = tokenizer  # a private, truncating copy: thread-safe to call
        self.quantize = quantize

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        """One row per text, in the order given.

        Texts are run in order of token length, so each batch pads to a length close to its own
        longest text instead of the longest of the whole call (the indexer calls with a window of
        several batches); the rows are put back in the caller's order."""
        encodings = self._tokenizer.encode_batch(texts)
        lengths = np.asarray([len(e.ids) for e in encodings])
        order = np.argsort(lengths, kind="stable")
        out: np.ndarray | None = None
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            width = int(lengths[rows].max())
            ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            types = np.zeros((len(rows), width), dtype=np.int64)
            for i, row in enumerate(rows):
                enc = encodings[row]
                n = len(enc.ids)
                ids[i, :n], mask[i, :n], types[i, :n] = enc.ids, enc.attention_mask, enc.type_ids
            hidden = self._session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": types})[0]
            weights = mask[:, :, None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)  # mean over real tokens
            if out is None:
                out = np.empty((len(texts), pooled.shape[1]), dtype=np.float32)
            out[rows] = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        assert out is not None  # callers never pass an empty list
        return out


def unsupported_reason(model: Any) -> str | None:
    """Why `model` (a SentenceTransformer) cannot run as the exported graph, or None when it can."""
    kinds = [type(module).__name__ for module in model]
    if kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        return f"its modules are {kinds}, not Transformer + Pooling"
    if getattr(model[1], "pooling_mode", None) != "mean":
        return "it does not use mean pooling"
    if str(model.device) != "cpu":
        return f"it runs on {model.device}, not the CPU"
    model_type = getattr(model[0].auto_model.config, "model_type", None)
    if model_type != "bert":
        return f"it is a {model_type!r} model, not a BERT-style one"
    return None


def build_onnx_encoder(
    model: Any, model_path: str, max_tokens: int, quantize: str, cache_dir: Path | None
) -> OnnxEncoder:
    """An ONNX Runtime encoder equivalent to `model`; the caller checked `unsupported_reason` first."""
    import onnxruntime

    path = exported_model(model[0].auto_model, model_path, quantize, cache_dir or default_cache_dir())
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    tokenizer = copy.deepcopy(model.tokenizer.backend_tokenizer)
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_tokens)
    return OnnxEncoder(session, tokenizer, quantize)

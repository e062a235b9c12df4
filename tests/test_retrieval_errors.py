"""Every error retrieval raises on purpose is a RetrievalError, wherever callers import it from."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import retrieval
from retrieval.chunking import chunk_document
from retrieval.errors import RetrievalConfigError, RetrievalError
from retrieval.models import Block, Document


def test_every_retrieval_exception_is_a_retrieval_error() -> None:
    found = set()
    for info in pkgutil.iter_modules(retrieval.__path__):
        module = importlib.import_module(f"retrieval.{info.name}")
        for name, value in vars(module).items():
            if inspect.isclass(value) and issubclass(value, BaseException) and value.__module__.startswith("retrieval"):
                assert issubclass(value, RetrievalError), f"retrieval.{info.name}.{name}"
                found.add(value.__name__)
    assert {"StoreError", "IndexLockedError", "LoadError", "EmbeddingModelError", "ManifestError"} <= found


def test_a_chunk_size_too_small_is_a_config_error(embedder) -> None:
    doc = Document("a.md", "A", [Block("Some text.")])
    with pytest.raises(RetrievalConfigError, match="QWENBOT_CHUNK_TOKENS=8"):
        chunk_document(doc, embedder, max_tokens=8)
    with pytest.raises(ValueError):  # what callers caught before the tree existed
        chunk_document(doc, embedder, max_tokens=8)

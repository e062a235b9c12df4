"""Every error retrieval raises on purpose is a RetrievalError, defined in retrieval/errors.py, with no
builtin mixins: `except RetrievalError` is the one way to catch them."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import retrieval
from retrieval.chunking import chunk_document
from retrieval.errors import RetrievalConfigError, RetrievalError
from retrieval.models import Block, Document


def _retrieval_exceptions() -> dict[str, type[BaseException]]:
    """Every exception class defined in (or imported into) a module of the retrieval package, by where
    it was found."""
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(retrieval.__path__, "retrieval."):
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if inspect.isclass(value) and issubclass(value, BaseException) and value.__module__.startswith("retrieval"):
                found[f"{info.name}.{name}"] = value
    return found


def test_every_retrieval_exception_is_a_retrieval_error() -> None:
    found = _retrieval_exceptions()
    for where, value in found.items():
        assert issubclass(value, RetrievalError), where
    names = {value.__name__ for value in found.values()}
    assert {"StoreError", "IndexLockedError", "LoadError", "EmbeddingModelError", "ManifestError"} <= names
    assert {"RerankError", "QuestionsError", "IndexRequestError", "RetrievalConfigError"} <= names


def test_the_tree_lives_in_retrieval_errors() -> None:
    for where, value in _retrieval_exceptions().items():
        assert value.__module__ == "retrieval.errors", f"{where} is defined in {value.__module__}"


def test_the_tree_has_no_builtin_mixins() -> None:
    """`except ValueError` (or RuntimeError) around retrieval code catches none of its errors by accident."""
    for where, value in _retrieval_exceptions().items():
        bases = [b for b in value.__mro__ if b not in (object, BaseException, Exception)]
        assert all(issubclass(b, RetrievalError) for b in bases), f"{where}: {[b.__name__ for b in bases]}"


def test_a_chunk_size_too_small_is_a_config_error(embedder) -> None:
    doc = Document("a.md", "A", [Block("Some text.")])
    with pytest.raises(RetrievalConfigError, match="QWENBOT_CHUNK_TOKENS=8"):
        chunk_document(doc, embedder, max_tokens=8)

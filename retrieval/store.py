"""The Chroma side of the index: opening the collection, reading it page by page, its change stamp,
and the local-folder lock.

A local Chroma folder must only ever be opened by one process (Chroma does not coordinate writers
across processes). `acquire_index_lock` enforces that with an exclusive `flock` on
`index_dir/.lock`; with a Chroma server (`chroma_host` set) no lock is needed.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from retrieval.config import IndexConfig
from retrieval.errors import IndexLockedError, IndexMissingError, ModelMismatchError, StoreUnavailableError

# Collection metadata keys (Chroma reserves "hnsw:*"; ours are prefixed to stay clear of it).
STAMP_KEY = "qwenbot_stamp"
INDEXED_AT_KEY = "qwenbot_indexed_at"
MODEL_KEY = "qwenbot_embedding_model"
# "none" or "int8". Absent on indexes from before quantization existed: those hold fp32 vectors. The
# backend is not recorded: fp32 vectors from ONNX Runtime and PyTorch agree to a cosine of 0.9999, so
# an index built with one is searched with the other; int8 vectors differ more and are never mixed.
QUANTIZE_KEY = "qwenbot_embedding_quantize"
# The vectors' size, recorded with the first vectors written: an endpoint may serve another model under
# the configured name (llama.cpp's server answers any name), which the name check cannot see.
DIMENSION_KEY = "qwenbot_embedding_dimension"
PAGE = 5000  # rows per Chroma read or write; below Chroma's own batch limit


def describe(config: IndexConfig) -> str:
    """Where the index lives, for messages."""
    if config.chroma_host:
        scheme = "https" if config.chroma_ssl else "http"
        return f"collection {config.collection!r} on {scheme}://{config.chroma_host}:{config.chroma_port}"
    return f"collection {config.collection!r} in {config.index_dir / 'chroma'}"


def model_mismatch_message(config: IndexConfig, indexed_with: str) -> str:
    return (
        f"the index ({describe(config)}) was built with the embedding model {indexed_with!r}, "
        f"but QWENBOT_EMBEDDING_MODEL is {config.embedding_model!r}; vectors from two models cannot be "
        "mixed. Use a new index (another QWENBOT_INDEX_DIR, or QWENBOT_COLLECTION with a Chroma server), "
        f"or delete this one ({config.index_dir}) and index again."
    )


def dimension_mismatch_message(config: IndexConfig, indexed: int, got: int) -> str:
    where = f" from {config.embedding_url}" if config.embedding_url else ""
    return (
        f"the index ({describe(config)}) holds {indexed}-dimensional vectors, but the embedding model "
        f"{config.embedding_model!r}{where} gives {got}: another model answers under that name. Serve the "
        "model the index was built with, or use a new index (another QWENBOT_INDEX_DIR or QWENBOT_COLLECTION)."
    )


def check_dimension(config: IndexConfig, collection: Any, dimension: int) -> None:
    """Refuses vectors of another size than the index's; records the size on an index without one
    (taken from a stored vector when the index predates the record)."""
    metadata = dict(collection.metadata or {})
    recorded = metadata.get(DIMENSION_KEY)
    if recorded is None:
        stored = collection.get(limit=1, include=["embeddings"])["embeddings"]
        recorded = len(stored[0]) if stored is not None and len(stored) else dimension
        collection.modify(metadata={**metadata, DIMENSION_KEY: int(recorded)})
    if int(recorded) != dimension:
        raise ModelMismatchError(dimension_mismatch_message(config, int(recorded), dimension))


def quantize_mismatch_message(config: IndexConfig, indexed_with: str) -> str:
    return (
        f"the index ({describe(config)}) was built with QWENBOT_EMBEDDING_QUANTIZE={indexed_with!r}, "
        f"but it is {config.embedding_quantize!r} now; quantized and full-precision vectors of the same "
        "model cannot be mixed. Set it back, use a new index (another QWENBOT_INDEX_DIR, or QWENBOT_COLLECTION "
        f"with a Chroma server), or delete this one ({config.index_dir}) and index again."
    )


def open_client(config: IndexConfig) -> Any:
    """A Chroma client: the local folder, or the server when `chroma_host` is set."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    settings = ChromaSettings(anonymized_telemetry=False)
    if config.chroma_host:
        try:
            return chromadb.HttpClient(
                host=config.chroma_host, port=config.chroma_port, ssl=config.chroma_ssl, settings=settings
            )
        except Exception as exc:  # the client pings the server on creation: any failure means unreachable
            raise StoreUnavailableError(
                f"cannot reach the Chroma server for {describe(config)}: {exc}; is `chroma run` up? "
                "(QWENBOT_CHROMA_HOST / QWENBOT_CHROMA_PORT)"
            ) from None
    return chromadb.PersistentClient(path=str(config.index_dir / "chroma"), settings=settings)


def index_exists(config: IndexConfig) -> bool:
    """True when a local index folder is there (always True with a server: the collection says)."""
    return bool(config.chroma_host) or (config.index_dir / "chroma").is_dir()


def open_collection(config: IndexConfig, create: bool = False, client: Any = None) -> Any:
    """The collection; with `create`, made if absent (cosine space, no Chroma-side embedding)."""
    if not create and not index_exists(config):
        raise IndexMissingError(f"no index at {config.index_dir}: run `qwenbot index` first")
    client = client or open_client(config)
    if create:
        return client.get_or_create_collection(
            config.collection, configuration={"hnsw": {"space": "cosine"}}, embedding_function=None
        )
    try:
        return client.get_collection(config.collection, embedding_function=None)
    except Exception as exc:  # NotFoundError's module moved between Chroma releases; match on meaning
        if "does not exist" in str(exc) or "not found" in str(exc).lower():
            raise IndexMissingError(f"no {describe(config)}: run `qwenbot index` first") from None
        raise


def iter_collection(collection: Any, include: list[str], ids: list[str] | None = None) -> Iterator[dict[str, Any]]:
    """The collection (or the rows `ids`), page by page. One get() of everything fails on a large one
    (SQLite's variable limit); pages go by id, as offset paging rescans from the start for each page."""
    ids = collection.get(include=[])["ids"] if ids is None else ids
    for start in range(0, len(ids), PAGE):
        yield collection.get(ids=ids[start : start + PAGE], include=include)


def current_metadata(config: IndexConfig, client: Any) -> dict[str, Any]:
    """The collection's metadata as stored now (a collection object keeps what it was opened with)."""
    return dict(client.get_collection(config.collection, embedding_function=None).metadata or {})


@dataclass(frozen=True)
class Stamp:
    value: str | None
    indexed_at: str | None
    model: str | None


def read_stamp(metadata: dict[str, Any]) -> Stamp:
    return Stamp(metadata.get(STAMP_KEY), metadata.get(INDEXED_AT_KEY), metadata.get(MODEL_KEY))


def new_stamp(model: str) -> Stamp:
    return Stamp(uuid.uuid4().hex, dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), model)


def write_stamp(collection: Any, stamp: Stamp) -> None:
    """Marks the collection as changed: searchers compare the value to refresh their BM25 index."""
    # modify() replaces the whole metadata: keep the other keys (the quantization) as they are.
    stamped = {STAMP_KEY: stamp.value, INDEXED_AT_KEY: stamp.indexed_at, MODEL_KEY: stamp.model}
    collection.modify(metadata={**(collection.metadata or {}), **stamped})


def record_model(collection: Any, config: IndexConfig) -> None:
    """Notes the embedding model and its quantization on a collection that has none yet (a new one),
    keeping its stamp."""
    metadata = dict(collection.metadata or {})
    if MODEL_KEY not in metadata:
        model = {MODEL_KEY: config.embedding_model, QUANTIZE_KEY: config.embedding_quantize}
        collection.modify(metadata={**metadata, **model})


def check_model(config: IndexConfig, metadata: dict[str, Any]) -> None:
    """Refuses an index whose vectors came from another model, or the same one quantized otherwise."""
    indexed_with = metadata.get(MODEL_KEY)
    if indexed_with and indexed_with != config.embedding_model:
        raise ModelMismatchError(model_mismatch_message(config, indexed_with))
    quantized = metadata.get(QUANTIZE_KEY) or "none"
    if indexed_with and quantized != config.embedding_quantize:
        raise ModelMismatchError(quantize_mismatch_message(config, quantized))


# --- the local-folder lock --------------------------------------------------------------------

_held: dict[Path, list[Any]] = {}  # lock path -> [open file, holders in this process]
_held_guard = threading.Lock()


class IndexLock:
    """Exclusive use of a local index folder by this process; re-entrant within the process.

    The bot takes it for its lifetime and indexes in-process; `qwenbot index` takes it for one run;
    a Searcher takes it while open. `release()` (or leaving the `with` block) drops one hold.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._released = path is None

    def release(self) -> None:
        if self._released or self.path is None:
            return
        self._released = True
        with _held_guard:
            entry = _held[self.path]
            entry[1] -= 1
            if entry[1] == 0:
                del _held[self.path]
                entry[0].close()  # closing the file drops the flock

    def __enter__(self) -> IndexLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def lock_holder(config: IndexConfig) -> str:
    """The pid the local index lock file names (its holder wrote it), for messages."""
    try:
        return (config.index_dir / ".lock").read_text().strip() or "unknown"
    except OSError:
        return "unknown"


def acquire_index_lock(config: IndexConfig) -> IndexLock:
    """Takes the local index lock (no-op with a Chroma server). Raises IndexLockedError if another
    process holds it. Use as a context manager, or keep it and call `release()`."""
    if config.chroma_host:
        return IndexLock(None)
    config.index_dir.mkdir(parents=True, exist_ok=True)
    path = (config.index_dir / ".lock").resolve()
    with _held_guard:
        entry = _held.get(path)
        if entry is not None:
            entry[1] += 1
            return IndexLock(path)
        handle = open(path, "a+")  # noqa: SIM115 - held open for as long as the lock is held
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise IndexLockedError(
                f"the index in {config.index_dir} is in use by another process (pid {lock_holder(config)}). A local "
                "index folder is opened by one process at a time: wait for that one to finish (a running "
                "`qwenbot run` takes `qwenbot index`, `ask` and `doctor` jobs itself), or use a Chroma "
                "server (QWENBOT_CHROMA_HOST) so several processes can use the index at once."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        _held[path] = [handle, 1]
    return IndexLock(path)

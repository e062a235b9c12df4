"""BM25 over the same chunks as Chroma (bm25s; each chunk tokenized in its own language by
retrieval/tokenize.py), persisted beside the store.

The index is built by the indexer at the end of a run from the collection itself, so it always
matches it, and saved under `index_dir/bm25/<stamp>/` with a `CURRENT` pointer swapped atomically.
Searchers load it once and reload only when the collection's change stamp moves. It also keeps each
chunk's path and tags in memory: that is what scoped searches resolve their filters against.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bm25s
import numpy as np

from retrieval.fusion import top_k_indices
from retrieval.models import SearchFilter
from retrieval.store import iter_collection
from retrieval.tokenize import DEFAULT_LANGUAGE, TOKENIZER_VERSION, analyzer_language, detect_language, tokenize

log = logging.getLogger(__name__)
# Lucene defaults; bm25s's "lucene" method is the BM25 variant Elasticsearch and Anserini score with.
BM25_K1 = 1.2
BM25_B = 0.75
# Saved indexes built with other tokenization or parameters are stale: queries would not match them.
# (Before languages were told apart it was "w1-enplus-snowball-k1.2-b0.75": English for every text.)
ANALYZER = f"w1-{TOKENIZER_VERSION}-snowball-k{BM25_K1}-b{BM25_B}"
_warned: set[tuple[str, str]] = set()
_warned_lock = threading.Lock()


def lexical_text(title: str, heading_path: str, text: str) -> str:
    """The words a chunk is found by: the same title, headings and passage that are embedded."""
    return f"{title}\n{heading_path}\n{text}"


def tags_field(tags: Iterable[str]) -> str:
    """Tags as Chroma metadata (which holds no lists): ",hr,leave," so a tag matches as ",tag,"."""
    cleaned = [t.strip() for t in tags if t.strip()]
    return f",{','.join(cleaned)}," if cleaned else ""


def parse_tags(field: str | None) -> tuple[str, ...]:
    return tuple(t for t in (field or "").split(",") if t)


def path_in_scope(path: str, prefixes: Sequence[str]) -> bool:
    """Folder-style prefixes: "hr" and "hr/" match "hr/leave.md", never "hr-old/leave.md"."""
    for prefix in prefixes:
        p = prefix.strip()
        while p.startswith("./"):
            p = p[2:]
        p = p.strip("/")
        if p in ("", ".") or path == p or path.startswith(p + "/"):
            return True
    return False


def _pointer(folder: Path) -> dict[str, Any]:
    try:
        pointer = json.loads((folder / "CURRENT").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(pointer, dict):
        return {}
    if pointer.get("analyzer") != ANALYZER:
        _say_stale(folder, str(pointer.get("analyzer")))
        return {}
    return pointer


def _say_stale(folder: Path, analyzer: str) -> None:
    """Once per folder: an index saved by another version is rebuilt (by whoever found it)."""
    with _warned_lock:
        if (str(folder), analyzer) in _warned:
            return
        _warned.add((str(folder), analyzer))
    log.warning(
        "keyword index %s was built with tokenizer %s; this version tokenizes with %s (each chunk in its "
        "own language), so it is rebuilt from the collection",
        folder,
        analyzer,
        ANALYZER,
    )


def _remove_old_versions(folder: Path, keep: set[str | None]) -> None:
    """Older versions go; so do leftovers of saves killed midway (an hour gives live ones time)."""
    for old in folder.iterdir():
        try:
            stale = not old.name.startswith("tmp-") or time.time() - old.stat().st_mtime > 3600
            if old.is_dir() and old.name not in keep and stale:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            continue  # removed meanwhile by another saver


def saved_stamp(folder: Path) -> str | None:
    """The change stamp the saved index was built at, without loading it."""
    return _pointer(folder).get("stamp")


def in_scope(path: str, tags: Iterable[str], flt: SearchFilter) -> bool:
    """A document passes a filter under any of its path prefixes or with any of its tags (any case),
    unless it is under one of its excluded prefixes."""
    if path_in_scope(path, flt.exclude_prefixes):
        return False
    if not flt.path_prefixes and not flt.tags:
        return True  # only exclusions: everything else passes
    wanted = {t.lower() for t in flt.tags}
    return path_in_scope(path, flt.path_prefixes) or bool(wanted.intersection(t.lower() for t in tags))


@dataclass
class LexicalIndex:
    stamp: str | None
    ids: list[str]
    paths: list[str]  # distinct document paths
    path_of: np.ndarray  # chunk position -> index into `paths`
    tags: list[tuple[str, ...]]  # per distinct path
    bm25: bm25s.BM25 | None  # None when the collection is empty
    languages: dict[str, int]  # how many chunks are in each language (retrieval/tokenize.py's codes)

    def __post_init__(self) -> None:
        self._scopes: dict[SearchFilter, tuple[list[str], np.ndarray]] = {}
        self._position = {cid: i for i, cid in enumerate(self.ids)}

    def allows(self, chunk_id: str, mask: np.ndarray) -> bool:
        """Whether `mask` (from `scope`) allows this chunk; chunks this snapshot does not know: no."""
        i = self._position.get(chunk_id)
        return i is not None and bool(mask[i])

    @classmethod
    def build(
        cls,
        stamp: str | None,
        ids: Sequence[str],
        texts: Sequence[str],
        paths: Sequence[str],
        tags: Sequence[tuple[str, ...]],
        langs: Sequence[str] | None = None,
    ) -> LexicalIndex:
        """`texts`, `paths`, `tags` and `langs` are per chunk, aligned with `ids`; each text is
        tokenized in its own language (detected when `langs` is None)."""
        if langs is None:
            langs = [detect_language(t) for t in texts]
        distinct: dict[str, int] = {}
        path_of = np.fromiter((distinct.setdefault(p, len(distinct)) for p in paths), np.int32, len(paths))
        doc_tags: list[tuple[str, ...]] = [()] * len(distinct)
        for p, t in zip(paths, tags, strict=True):
            doc_tags[distinct[p]] = t
        bm25 = None
        if ids:
            bm25 = bm25s.BM25(k1=BM25_K1, b=BM25_B, method="lucene")
            bm25.index([tokenize(t, lang) for t, lang in zip(texts, langs, strict=True)], show_progress=False)
        languages: dict[str, int] = {}
        for lang in langs:
            languages[lang] = languages.get(lang, 0) + 1
        return cls(stamp, list(ids), list(distinct), path_of, doc_tags, bm25, languages)

    def __len__(self) -> int:
        return len(self.ids)

    def scope(self, flt: SearchFilter) -> tuple[list[str], np.ndarray]:
        """The document paths a filter allows, and the matching chunk mask; cached per filter."""
        cached = self._scopes.get(flt)
        if cached is None:
            allowed = [i for i, path in enumerate(self.paths) if in_scope(path, self.tags[i], flt)]
            mask = np.isin(self.path_of, np.asarray(allowed, dtype=np.int32))
            cached = ([self.paths[i] for i in allowed], mask)
            if len(self._scopes) > 64:  # channels use a handful of scopes; bound it anyway
                self._scopes.clear()
            self._scopes[flt] = cached
        return cached

    def query_tokens(self, query: str) -> list[str]:
        """`query` tokenized as the chunks it should match were: in its language, told apart among the
        languages the chunks are in (a short question is then not taken for a language none is in).
        CJK characters are tokenized the same in every language, so mixed questions match too."""
        if all(analyzer_language(lang) == DEFAULT_LANGUAGE for lang in self.languages):
            return tokenize(query, DEFAULT_LANGUAGE)  # one analyzer for every chunk: nothing to tell apart
        return tokenize(query, detect_language(query, among=self.languages))

    def search(self, query: str, k: int, mask: np.ndarray | None = None) -> list[tuple[str, float]]:
        """Top `k` (chunk id, BM25 score), best first; only chunks where `mask` is True if given."""
        if self.bm25 is None or k <= 0:
            return []
        token_ids = self.bm25.get_tokens_ids(self.query_tokens(query))
        if not token_ids:
            return []
        scores = self.bm25.get_scores_from_ids(token_ids)
        if mask is not None:
            scores = np.where(mask, scores, 0.0)
        return [(self.ids[i], float(scores[i])) for i in top_k_indices(scores, k) if scores[i] > 0]

    def idf(self, tokens: Sequence[str]) -> dict[str, float]:
        """BM25 (Lucene) inverse document frequency of each token (from `query_tokens`) over the chunks.

        A token no chunk holds gets the highest IDF there is: nothing in the docs mentions it."""
        if self.bm25 is None:
            return dict.fromkeys(tokens, 0.0)
        n = len(self.ids)
        indptr = self.bm25.scores["indptr"]  # token-major CSC: a token's non-zero scores are its chunks
        vocab = self.bm25.vocab_dict
        out = {}
        for token in tokens:
            i = vocab.get(token)
            df = 0 if i is None else int(indptr[i + 1] - indptr[i])
            out[token] = math.log(1 + (n - df + 0.5) / (df + 0.5))
        return out

    # --- persistence --------------------------------------------------------------------------

    def save(self, folder: Path) -> None:
        """Writes a new version under `folder` and points CURRENT at it; older versions are removed."""
        folder.mkdir(parents=True, exist_ok=True)
        name = uuid.uuid4().hex
        target = folder / f"tmp-{name}"  # never taken for a finished version by a concurrent cleanup
        target.mkdir()
        if self.bm25 is not None:
            self.bm25.save(str(target), show_progress=False)
        meta = {
            "stamp": self.stamp,
            "ids": self.ids,
            "paths": self.paths,
            "path_of": self.path_of.tolist(),
            "tags": [list(t) for t in self.tags],
            "languages": self.languages,
        }
        (target / "chunks.json").write_text(json.dumps(meta), encoding="utf-8")
        os.replace(target, folder / name)
        pointer = folder / f"CURRENT.{os.getpid()}.{name}.tmp"
        pointer.write_text(json.dumps({"stamp": self.stamp, "dir": name, "analyzer": ANALYZER}), encoding="utf-8")
        os.replace(pointer, folder / "CURRENT")
        _remove_old_versions(folder, keep={name, _pointer(folder).get("dir")})

    @classmethod
    def load(cls, folder: Path) -> LexicalIndex | None:
        """The saved index, or None when there is none or it cannot be read (callers rebuild it)."""
        try:
            target = folder / _pointer(folder)["dir"]
            meta = json.loads((target / "chunks.json").read_text(encoding="utf-8"))
            bm25 = bm25s.BM25.load(str(target), show_progress=False) if meta["ids"] else None
        except (OSError, ValueError, KeyError):
            return None
        return cls(
            meta["stamp"],
            meta["ids"],
            meta["paths"],
            np.asarray(meta["path_of"], dtype=np.int32),
            [tuple(t) for t in meta["tags"]],
            bm25,
            meta["languages"],
        )


def build_lexical(collection: Any, stamp: str | None) -> LexicalIndex:
    """The BM25 index of everything in the Chroma collection, in the collection's current state."""
    ids: list[str] = []
    texts: list[str] = []
    paths: list[str] = []
    tags: list[tuple[str, ...]] = []
    langs: list[str] = []
    for page in iter_collection(collection, ["documents", "metadatas"]):
        for cid, doc, meta in zip(page["ids"], page["documents"], page["metadatas"], strict=True):
            ids.append(cid)
            texts.append(lexical_text(meta.get("title", ""), meta.get("heading_path", ""), doc or ""))
            paths.append(meta["path"])
            tags.append(parse_tags(meta.get("tags")))
            # Chunks written before languages were recorded are told apart now, the same way.
            langs.append(meta.get("lang") or detect_language(texts[-1]))
    return LexicalIndex.build(stamp, ids, texts, paths, tags, langs)

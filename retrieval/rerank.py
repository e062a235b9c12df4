"""The optional rerank stage: a cross-encoder rescoring the best fused chunks.

A reranker is either a sentence-transformers `CrossEncoder` (a model name in the local cache or a
folder) loaded in this process, or an `http(s)://` URL speaking the common rerank API that vLLM
(`/v1/rerank`), TEI (`/rerank`), Infinity, Jina and Cohere share: a request
`{"query", "documents", "top_n"}` (TEI names the list "texts") and a response that is either a list
or `{"results": [...]}` of `{"index", "relevance_score" | "score"}`.

Reranking is a refinement, never a dependency: a reranker that cannot be loaded, is down, is slower
than its timeout or answers nonsense is skipped (`RerankError`), the fused order is kept, and it is
not tried again for a short while so that an outage costs neither a timeout per question nor a log
line per question.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any, Protocol

from retrieval.errors import RerankError
from retrieval.models import Hit

log = logging.getLogger(__name__)

# After a failure the reranker rests this long before the next try.
RETRY_AFTER_SECONDS = 30.0


class Reranker(Protocol):
    name: str

    def scores(self, query: str, passages: Sequence[str]) -> list[float]:
        """One relevance score per passage, higher is better; raises RerankError."""
        ...


class HttpReranker:
    """A rerank endpoint. The request field for the passages ("documents", or TEI's "texts") is found
    on first contact: a server that rejects one gets the other, and the one that worked is kept."""

    def __init__(self, url: str, timeout: float) -> None:
        parts = urllib.parse.urlsplit(url)
        # How it is named in logs and messages: without user:password@, query or fragment (credentials).
        self.name = urllib.parse.urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))
        self.url = url
        self.timeout = timeout
        self._field = "documents"

    def scores(self, query: str, passages: Sequence[str]) -> list[float]:
        if not passages:
            return []
        try:
            raw = self._post(query, passages, self._field)
        except urllib.error.HTTPError as exc:
            if exc.code not in (400, 422):  # 422: TEI (and pydantic servers) naming a missing field
                raise RerankError(f"{self.name} answered HTTP {exc.code}") from None
            other = "texts" if self._field == "documents" else "documents"
            try:
                raw = self._post(query, passages, other)
            except (urllib.error.URLError, OSError, ValueError) as again:
                raise RerankError(f"{self.name} rejected the request (HTTP {exc.code}; {_reason(again)})") from None
            self._field = other
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise RerankError(f"{self.name}: {_reason(exc)}") from None
        return _parse(raw, len(passages), self.name)

    def _post(self, query: str, passages: Sequence[str], field: str) -> Any:
        body = json.dumps({"query": query, field: list(passages), "top_n": len(passages)}).encode("utf-8")
        request = urllib.request.Request(
            self.url, data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            return json.loads(response.read())


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__


def _parse(raw: Any, n: int, where: str) -> list[float]:
    """Scores in passage order from either response shape; every passage must be scored."""
    results = raw.get("results") if isinstance(raw, dict) else raw
    if not isinstance(results, list):
        raise RerankError(f"{where}: the response holds no list of results")
    scores: list[float | None] = [None] * n
    for item in results:
        score = item.get("relevance_score", item.get("score")) if isinstance(item, dict) else None
        index = item.get("index") if isinstance(item, dict) else None
        if not isinstance(index, int) or not 0 <= index < n or not isinstance(score, int | float):
            raise RerankError(f"{where}: a result is not {{'index', 'relevance_score' | 'score'}}: {item!r:.80}")
        scores[index] = float(score)
    if any(s is None for s in scores):
        raise RerankError(f"{where}: scored {sum(s is not None for s in scores)} of {n} passages")
    return [s for s in scores if s is not None]


class CrossEncoderReranker:
    """A sentence-transformers CrossEncoder, loaded on first use (a search never waits for it twice)."""

    def __init__(self, model: str, device: str = "cpu") -> None:
        self.name = model
        self.device = device
        self._model: Any = None
        self._lock = threading.Lock()

    def scores(self, query: str, passages: Sequence[str]) -> list[float]:
        if not passages:
            return []
        try:
            with self._lock:
                if self._model is None:
                    from sentence_transformers import CrossEncoder  # imports torch: only when configured

                    self._model = CrossEncoder(self.name, device=self.device)
            scores = self._model.predict([(query, p) for p in passages], show_progress_bar=False)
        except (OSError, ValueError, RuntimeError) as exc:
            raise RerankError(f"cross-encoder {self.name!r}: {str(exc).splitlines()[0] if str(exc) else exc}") from None
        return [float(s) for s in scores]


def make_reranker(setting: str, timeout: float, device: str = "cpu") -> Reranker | None:
    """From the QWENBOT_RERANKER value: empty is off, a URL is an endpoint, anything else a CrossEncoder."""
    setting = setting.strip()
    if not setting:
        return None
    if setting.lower().startswith(("http://", "https://")):
        return HttpReranker(setting, timeout)
    return CrossEncoderReranker(setting, device)


def passage(hit: Hit) -> str:
    """What the reranker reads of a hit: the header the chunk was embedded with, then its text."""
    header = " > ".join(part for part in (hit.title, hit.heading_path) if part)
    return f"{header}\n{hit.text}" if header else hit.text


class RerankStage:
    """A reranker behind the skip-on-failure policy the search path relies on."""

    def __init__(self, reranker: Reranker, candidates: int) -> None:
        self.reranker = reranker
        self.candidates = candidates
        self._resting_until = 0.0

    def rerank(self, query: str, hits: Sequence[Hit]) -> list[Hit]:
        """The first `candidates` hits rescored (`rerank_score`) and ordered by it, the rest after them
        in fused order; all of them in fused order when the reranker is failing or resting."""
        head = list(hits[: self.candidates])
        if not head or time.monotonic() < self._resting_until:
            return list(hits)
        try:
            scores = self.reranker.scores(query, [passage(h) for h in head])
        except RerankError as exc:
            self._resting_until = time.monotonic() + RETRY_AFTER_SECONDS
            log.warning("reranker skipped, fused order kept (next try in %.0f s): %s", RETRY_AFTER_SECONDS, exc)
            return list(hits)
        rescored = [dataclasses.replace(h, rerank_score=s) for h, s in zip(head, scores, strict=True)]
        rescored.sort(key=lambda h: h.rerank_score or 0.0, reverse=True)  # stable: ties keep fused order
        return rescored + list(hits[len(head) :])

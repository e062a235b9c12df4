"""What the MCP tools do, protocol-free: search the index within a caller's scope, read a document,
list what is indexed, answer a question with the bot's pipeline. Read-only: nothing here writes to the
index. Errors an agent can act on are McpToolError, one line each.

The index is opened as `qwenbot ask` opens it: here (a local folder, or a Chroma server), or through the
running bot's control channel while a bot holds the local folder (bot/indexing/control.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field

from bot.answer.pipeline import AnswerPipeline
from bot.answer.records import Done
from bot.config import AnswerConfig
from bot.errors import QwenbotError
from bot.llm.client import LLMClient
from bot.mcp.auth import Caller
from bot.scopes import agent_may_read
from retrieval.config import IndexConfig
from retrieval.errors import RetrievalError
from retrieval.lexical import parse_tags
from retrieval.loaders import load_document
from retrieval.manifest import DEFAULT_ROOT, Manifest, load_manifest
from retrieval.models import Hit, SearchFilter
from retrieval.search import IndexInfo, Searcher, SearchService
from retrieval.store import open_client, open_collection

MAX_K = 20
# A request narrowing a token's scope is searched within the request's filter and cut to the token's:
# this many times k are fetched so that the cut still leaves k.
_NARROWED_FETCH = 4
# Learned answers of the channels' scopes are cut from every search's hits (no filter can leave out "every
# learned folder but the default's"): this many times k are fetched so that the cut still leaves k.
_LEARNED_FETCH = 2
# Consecutive chunks share their overlap word for word (18 of 24 pairs in docs_corpus); a shorter match is
# a coincidence (a full stop), not the overlap.
_MIN_OVERLAP = 20


class McpToolError(QwenbotError):
    """A tool call the agent can correct: a key not in the index, a scope that matches nothing."""


def _about(text: str) -> Any:
    """A field's description in the tool's output schema (what an agent reads)."""
    return Field(description=text)


Key = Annotated[str, _about("the document key, e.g. 'hr/vacation.md': get_document and doc:// take it")]
Url = Annotated[str | None, _about("where people read the document: cite this")]
Updated = Annotated[str | None, _about("the document's own date (ISO)")]
Archived = Annotated[bool, _about("archived / deprecated / superseded: may be outdated, say so when citing it")]
HeadingPath = Annotated[str, _about("the section, e.g. 'Leave > Vacation'")]


@dataclass(frozen=True)
class Passage:
    """One search result: a passage of a document, with what a citation needs."""

    key: Key
    title: str
    heading_path: HeadingPath
    url: Url
    updated: Updated
    archived: Archived
    score: Annotated[float, _about("fused dense + keyword score, higher is better (archived documents' lowered)")]
    rerank_score: Annotated[float | None, _about("the reranker's relevance, when one is configured")]
    text: str
    page: Annotated[int | None, _about("the PDF page, for PDFs")]


@dataclass(frozen=True)
class DocumentText:
    key: Key
    title: str
    url: Url
    updated: Updated
    archived: Archived
    tags: list[str]
    owner: Annotated[str | None, _about("who keeps the document up to date (its front matter)")]
    text: Annotated[str, _about("the whole text, sections headed '## <heading path>'")]
    chunks: Annotated[int, _about("how many passages search_docs may return from it")]


@dataclass(frozen=True)
class RootInfo:
    name: Annotated[str, _about("'' is the docs folder; other roots' keys start with NAME/")]
    documents: int
    chunks: int
    last_indexed: Annotated[str | None, _about("when an index run last changed this root (ISO)")]


@dataclass(frozen=True)
class SourceInfo:
    """A source synced into its own root (git, a website, Confluence...; bot/sources/)."""

    name: Annotated[str, _about("its root's name: its documents' keys start with NAME/")]
    kind: Annotated[str, _about("git, website, confluence, notion or gdrive")]
    documents: int
    last_success: Annotated[str, _about("when it last synced, or 'never'")]
    next_sync: str
    ok: Annotated[bool, _about("the last sync worked")]


@dataclass(frozen=True)
class SourcesInfo:
    roots: list[RootInfo]
    sources: Annotated[list[SourceInfo], _about("the synced sources' status; [] without a sources file")]
    documents: int
    chunks: int
    last_indexed: Annotated[str | None, _about("when an index run last changed the index (ISO)")]
    embedding_model: str | None


@dataclass(frozen=True)
class Cited:
    n: Annotated[int, _about("the [n] the answer's text uses")]
    key: Key
    title: str
    heading_path: HeadingPath
    url: Url
    updated: Updated
    archived: Archived


@dataclass(frozen=True)
class AnswerResult:
    text: Annotated[str, _about("the answer, citing sources as [n]")]
    mode: Annotated[
        Literal["generated", "extractive", "not_found", "failed"],
        _about(
            "generated: the model's; extractive: passages quoted (no model); not_found: the docs do not "
            "cover it; failed: the model failed"
        ),
    ]
    sources: Annotated[list[Cited], _about("cited (generated, extractive), or the nearest documents (the rest)")]
    model_error: Annotated[str | None, _about("why the model gave no (complete) answer")]


@dataclass
class IndexAccess:
    """The open index: its searcher, its figures, and its chunks by document (None through the bot)."""

    config: IndexConfig
    searcher: SearchService
    stats: Callable[[], IndexInfo]
    collection: Any | None


@contextmanager
def open_index(config: IndexConfig) -> Iterator[IndexAccess]:
    from bot.indexing.control import local_or_bot  # the control channel imports the indexing job

    with local_or_bot(config) as bot:
        if bot is not None:
            yield IndexAccess(config, bot.searcher(config), bot.stats, None)
            return
        with Searcher(config) as searcher:
            yield IndexAccess(config, searcher, searcher.stats, open_collection(config, client=open_client(config)))


class DocsTools:
    """The tools' work, for one open index, shared by every caller."""

    def __init__(
        self,
        index: IndexAccess,
        answers: AnswerConfig,
        llm: LLMClient | None,
        source_status: Callable[[], list[SourceInfo]] = list,
    ) -> None:
        self.index = index
        self.source_status = source_status  # bot/mcp/status.py
        self.searcher = AgentSearcher(index.searcher)
        self.pipeline = AnswerPipeline(answers, self.searcher, llm)

    def warm_up(self) -> None:
        """One search now, not at the first call: it loads the query model and the vector index (seconds)."""
        if isinstance(self.index.searcher, Searcher):
            self.index.searcher.search("warm-up", k=1)

    def search(self, caller: Caller, query: str, k: int, path_prefix: str | None, tags: list[str]) -> list[Passage]:
        scope, asked = caller.scope, SearchFilter((path_prefix,) if path_prefix else (), tuple(tags))
        if asked.is_empty:
            flt, fetch = scope, k
        else:  # what the caller may never see stays out of the request's filter too
            flt = dataclasses.replace(asked, exclude_prefixes=scope.exclude_prefixes)
            fetch = min(k * _NARROWED_FETCH, 100) if scope.path_prefixes or scope.tags else k
        hits = self.searcher.search(query, k=fetch, filter=None if flt.is_empty else flt)
        hits = [h for h in hits if agent_may_read(h.path, h.tags, scope)][:k]
        if not hits and query.strip():
            raise McpToolError(self._nothing_in(caller, asked))
        return [_passage(h) for h in hits]

    def document(self, caller: Caller, key: str) -> DocumentText:
        """A key the caller may not see is answered as an unknown one: its existence is not told either."""
        doc = self._from_chunks(key) if self.index.collection is not None else self._from_file(key)
        if doc is None or not agent_may_read(doc.key, tuple(doc.tags), caller.scope):
            raise McpToolError(
                f"unknown document key {key!r}: use a key search_docs returned (like 'hr/vacation.md'), "
                "exact and case-sensitive"
            )
        return doc

    def sources(self, caller: Caller) -> SourcesInfo:
        """The roots and sources the caller may see, with its documents' figures only."""
        info, manifest, scope = self.index.stats(), self._manifest(), caller.scope
        narrowed = bool(scope.path_prefixes or scope.tags)
        excluded = {p.strip("/") for p in scope.exclude_prefixes}
        roots = _roots(manifest, scope) if manifest else []
        shown = {r.name for r in roots}
        sources = [s for s in self.source_status() if s.name in shown or not (narrowed or s.name in excluded)]
        if manifest is None:  # no per-document figures: the index's own
            return SourcesInfo(roots, sources, info.documents, info.chunks, info.last_indexed, info.embedding_model)
        documents, chunks = sum(r.documents for r in roots), sum(r.chunks for r in roots)
        return SourcesInfo(roots, sources, documents, chunks, info.last_indexed, info.embedding_model)

    def answer(self, caller: Caller, question: str) -> AnswerResult:
        events = self.pipeline.run(question, [], None if caller.scope.is_empty else caller.scope)
        answer = next(e.answer for e in events if isinstance(e, Done))
        sources = [Cited(s.n, s.path, s.title, s.heading_path, s.url, s.updated, s.archived) for s in answer.sources]
        return AnswerResult(answer.text, answer.mode, sources, answer.model_error)

    # --- internals -------------------------------------------------------------------------------

    def _nothing_in(self, caller: Caller, asked: SearchFilter) -> str:
        parts = [f"path_prefix {p!r}" for p in asked.path_prefixes] + [f"tags {list(asked.tags)}" if asked.tags else ""]
        what = " and ".join(p for p in parts if p) or "this search"
        narrowed = caller.scope.path_prefixes or caller.scope.tags
        mine = f" within the scope of {caller.name!r} ({_scope_text(caller.scope)})" if narrowed else ""
        return f"{what} matches no indexed document{mine}: list_sources shows what is indexed"

    def _manifest(self) -> Manifest | None:
        try:
            return load_manifest(self.index.config.index_dir / "manifest.json")
        except RetrievalError:
            return None

    def _from_chunks(self, key: str) -> DocumentText | None:
        assert self.index.collection is not None
        got = self.index.collection.get(where={"path": key}, include=["documents", "metadatas"])
        rows = sorted(zip(got["metadatas"], got["documents"], strict=True), key=lambda r: int(r[0]["ordinal"]))
        if not rows:
            return None
        meta = rows[0][0]
        texts, heading = [], None
        for chunk_meta, text in rows:
            if chunk_meta.get("heading_path") != heading:
                heading = chunk_meta.get("heading_path")
                texts.append(f"## {heading}" if heading else "")
                texts.append(text or "")
            else:
                texts[-1] = _join_overlapping(texts[-1], text or "")
        return DocumentText(
            key,
            meta.get("title", ""),
            meta.get("url"),
            meta.get("updated"),
            bool(meta.get("archived", False)),
            list(parse_tags(meta.get("tags"))),
            meta.get("owner") or None,
            "\n\n".join(t for t in texts if t),
            len(rows),
        )

    def _from_file(self, key: str) -> DocumentText | None:
        """Through the bot: the indexed file itself, found through the manifest (only keys it lists)."""
        manifest = self._manifest()
        entry = manifest.files.get(key) if manifest else None
        root = manifest.roots.get(entry.root) if manifest and entry else None
        if entry is None or root is None:
            return None
        rel = key if entry.root == DEFAULT_ROOT else key.removeprefix(entry.root + "/")
        try:
            doc = load_document(Path(root.path) / rel, key)
        except (OSError, RetrievalError):
            return None
        body = "\n\n".join(b.text for b in doc.blocks)
        tags = list(doc.tags)
        return DocumentText(
            key, doc.title, doc.url, doc.updated, doc.archived, tags, doc.owner, body, len(entry.chunk_ids)
        )


class AgentSearcher:
    """The index as MCP callers search it (search_docs, and the answer pipeline's searches): no learned
    answer but the default scope's, whatever the filter (bot/scopes.py agent_may_read)."""

    def __init__(self, searcher: SearchService) -> None:
        self.inner = searcher
        self.config = searcher.config

    def search(self, query: str, k: int = 6, filter: SearchFilter | None = None) -> list[Hit]:
        hits = self.inner.search(query, k=k * _LEARNED_FETCH, filter=filter)
        return [h for h in hits if agent_may_read(h.path, h.tags, filter or SearchFilter())][:k]

    def term_idf(self, query: str) -> dict[str, float]:
        return self.inner.term_idf(query)


def _roots(manifest: Manifest, scope: SearchFilter) -> list[RootInfo]:
    """The roots holding documents the scope may see, counting those only (the manifest has no tags: a
    scope with tags counts every document its exclusions leave); a root excluded whole is not named."""
    counted = dataclasses.replace(scope, path_prefixes=(), tags=()) if scope.tags else scope
    narrowed = bool(scope.path_prefixes or scope.tags)
    excluded = {p.strip("/") for p in scope.exclude_prefixes}
    roots = []
    for name, root in sorted(manifest.roots.items()):
        keys = [k for k, e in manifest.files.items() if e.root == name and agent_may_read(k, (), counted)]
        if not keys and (narrowed or name in excluded):
            continue
        chunks = sum(len(manifest.files[k].chunk_ids) for k in keys)
        roots.append(RootInfo(name, len(keys), chunks, root.indexed_at))
    return roots


def _passage(hit: Hit) -> Passage:
    return Passage(
        hit.path,
        hit.title,
        hit.heading_path,
        hit.url,
        hit.updated,
        hit.archived,
        round(hit.score, 6),
        None if hit.rerank_score is None else round(hit.rerank_score, 6),
        hit.text,
        hit.page,
    )


def _join_overlapping(before: str, after: str) -> str:
    """Two consecutive chunks of one section, the text they share (the chunk overlap) said once."""
    for n in range(min(len(before), len(after)), _MIN_OVERLAP - 1, -1):
        if before.endswith(after[:n]):
            return before + after[n:]
    return before + "\n\n" + after


def _scope_text(scope: SearchFilter) -> str:
    return ", ".join(
        [f"path_prefixes {list(scope.path_prefixes)}"] * bool(scope.path_prefixes)
        + [f"tags {list(scope.tags)}"] * bool(scope.tags)
    )


def as_json(record: Any) -> Any:
    """A record (or list of them) as plain JSON values."""
    if isinstance(record, list):
        return [as_json(r) for r in record]
    return dataclasses.asdict(record)

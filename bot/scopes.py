"""A scope of documents, as the channel scopes file and the MCP tokens file both write it
(`path_prefixes`, `tags`, `sources`), and the privacy rules every scope's search filter follows,
whoever asks: a source with `answer_in` is out of every scope it may not answer in, and learned
answers stay in the scope they were saved in (bot/knowledge/scopes.py).

A Slack channel may answer from a source when the source's answer_in lists the channel (bot/slack/
policy.py); an MCP caller (a token, or stdio) only when its scope names the source, an admin's explicit
mapping (`agent_filter`), and it sees the default scope's learned answers only (`agent_may_read`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from bot.errors import ConfigError
from bot.knowledge.scopes import in_other_scope
from retrieval.lexical import in_scope
from retrieval.models import SearchFilter
from retrieval.sources.spec import SourceSpec

SCOPE_KEYS = ("path_prefixes", "tags", "sources")


@dataclass(frozen=True)
class ScopeSpec:
    """A scope as written: its filter (a source it names is in as its documents' prefix NAME/) and the
    sources it names (checked against the sources file by whoever applies them)."""

    filter: SearchFilter = SearchFilter()
    sources: tuple[str, ...] = ()


def parse_scope(raw: Mapping[str, Any], where: str, error: type[ConfigError] = ConfigError) -> ScopeSpec:
    """The scope keys of one entry (its other keys are its file's own); `error` names the file's kind."""
    values: dict[str, tuple[str, ...]] = {}
    for key in SCOPE_KEYS:
        items = raw.get(key) or []
        if isinstance(items, str):
            items = [items]
        if not isinstance(items, list) or not all(isinstance(i, str) and i.strip() for i in items):
            raise error(f"{where}.{key}: expected a list of non-empty strings")
        values[key] = tuple(i.strip() for i in items)
    prefixes = values["path_prefixes"] + tuple(f"{name}/" for name in values["sources"])
    return ScopeSpec(SearchFilter(path_prefixes=prefixes, tags=values["tags"]), values["sources"])


def named_source(
    name: str, specs: Mapping[str, SourceSpec], where: str, error: type[ConfigError] = ConfigError
) -> SourceSpec:
    """The source a scope names; one line when the sources file has no such source."""
    if name not in specs:
        known = ", ".join(sorted(specs)) or "none: QWENBOT_SOURCES_FILE lists no source"
        raise error(f"{where}.sources names {name!r}, no such source ({known})")
    return specs[name]


def without_sources(
    flt: SearchFilter, sources: Iterable[SourceSpec], answers_here: Callable[[SourceSpec], bool]
) -> SearchFilter:
    """`flt` with every source that has `answer_in` and may not answer here excluded (its prefix NAME/)."""
    out = tuple(f"{s.name}/" for s in sources if s.answer_in is not None and not answers_here(s))
    return replace(flt, exclude_prefixes=(*flt.exclude_prefixes, *out)) if out else flt


def agent_filter(scope: ScopeSpec, sources: Iterable[SourceSpec], where: str) -> SearchFilter:
    """An MCP caller's filter: its scope without the sources restricted by `answer_in` that it does not
    name (whatever channels answer_in lists). Learned answers: `agent_may_read` on each document."""
    specs = {spec.name: spec for spec in sources}
    for name in scope.sources:
        named_source(name, specs, where)
    return without_sources(scope.filter, specs.values(), lambda s: s.name in scope.sources)


def agent_may_read(key: str, tags: Iterable[str], flt: SearchFilter) -> bool:
    """Whether an MCP caller with the filter `flt` (agent_filter's) may see the document `key`: in its
    filter, and no learned answer but the default scope's (it has no channel; DMs' answers are everyone's)."""
    return in_scope(key, tags, flt) and not in_other_scope(key)

"""Which channels a learned answer answers in: the channels of the scope it was saved in, and no other.

A learned answer is a document of the `learned` root at `learned/<scope key>/<id>-<slug>.md`. The scope
key names the channel scopes file's entry whose filter the channel has ("default" for DMs and channels
not listed, or listed with the default's filter; else a short hash of the filter, so channels listed
with the same filter share their learned answers). Each scope's search filter then takes its own
folder in and every other scope's folder out: no new kind of filter, and the indexer and the search
scope learned answers like any document."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

from retrieval.models import SearchFilter
from retrieval.sources.config import LEARNED_ROOT

DEFAULT_KEY = "default"
_PREFIX = f"{LEARNED_ROOT}/"


def _own(flt: SearchFilter) -> SearchFilter:
    """The filter as the scopes file (and the sources file) made it: the learned folders taken out."""
    return replace(
        flt,
        path_prefixes=tuple(p for p in flt.path_prefixes if not p.startswith(_PREFIX)),
        exclude_prefixes=tuple(p for p in flt.exclude_prefixes if not p.startswith(_PREFIX)),
    )


def scope_key(flt: SearchFilter, default: SearchFilter) -> str:
    """The learned answers' folder of the scope whose filter is `flt` (`default`: the default scope's)."""
    own = _own(flt)
    if own == _own(default):
        return DEFAULT_KEY
    text = json.dumps([sorted(own.path_prefixes), sorted(own.tags), sorted(own.exclude_prefixes)])
    return "s-" + hashlib.sha256(text.encode()).hexdigest()[:10]


def folder(key: str) -> str:
    return f"{_PREFIX}{key}/"


def with_learned(
    default: SearchFilter, channels: dict[str, SearchFilter]
) -> tuple[SearchFilter, dict[str, SearchFilter]]:
    """The scopes' filters, each taking its own learned folder in and the other scopes' out."""
    keys = {scope_key(f, default) for f in [default, *channels.values()]}

    def scoped(flt: SearchFilter) -> SearchFilter:
        key = scope_key(flt, default)
        others = tuple(folder(k) for k in sorted(keys - {key}))
        # an empty filter takes in everything already (its own folder with it)
        prefixes = (*flt.path_prefixes, folder(key)) if flt.path_prefixes or flt.tags else flt.path_prefixes
        return replace(flt, path_prefixes=prefixes, exclude_prefixes=(*flt.exclude_prefixes, *others))

    return scoped(default), {channel: scoped(flt) for channel, flt in channels.items()}


def in_other_scope(key: str) -> bool:
    """Whether the document `key` is a learned answer of a scope other than the default: a caller with
    no channel (MCP) sees the default scope's only, whatever scope keys the scopes file has or had (a
    filter's folder-style prefixes cannot say "every folder but one": callers check each key)."""
    return key.startswith(_PREFIX) and not key.startswith(folder(DEFAULT_KEY))


def known_keys(default: SearchFilter, channels: dict[str, SearchFilter]) -> set[str]:
    """The scope keys the scopes file has now: a learned answer saved under another (a scope since
    changed) is not mirrored, so never cited where its scope no longer says."""
    return {scope_key(f, default) for f in [default, *channels.values()]}

"""The sources file (QWENBOT_SOURCES_FILE, YAML; deploy/sources.example.yml): the sources to sync.

    sources:
      - name: handbook          # its root's name: documents are keyed handbook/<path in the mirror>
        type: git               # git | website | confluence | notion | gdrive
        interval_minutes: 60    # optional (default 60)
        answer_in: [C0ENGINEER] # optional; omitted = everywhere (channel ids, or "default")
        url: https://git.example.com/eng/handbook.git   # every other key is the type's own setting
        token_env: HANDBOOK_GIT_TOKEN                   # secrets: named by their environment variable

Parsed like front matter (no aliases, bounded size and nesting). Every mistake is one line naming the
file, the source and the key, and all of them are reported at once. The type's own keys are checked by
its connector (`connector(spec, work_dir)`), not here.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from retrieval.errors import SourceConfigError
from retrieval.formats.front_matter import load_yaml
from retrieval.index_plan import ROOT_NAME
from retrieval.sources.registry import MODULES
from retrieval.sources.spec import SourceSpec

_FILE_LIMIT = 1024 * 1024  # a sources file is a few dozen lines
_COMMON_KEYS = frozenset({"name", "type", "interval_minutes", "answer_in"})
# Roots the bot fills itself: the experts' saved answers (bot/knowledge) are the built-in source `learned`.
LEARNED_ROOT = "learned"
# Keys that would hold a secret in the file itself: refused, whatever the type (the value is never shown).
_SECRET_KEYS = frozenset(
    {"token", "password", "secret", "api_key", "api_token", "access_token", "client_secret", "private_key"}
)
_MAX_INTERVAL = 7 * 24 * 60.0  # a week: longer is a typo (hours or seconds written as minutes)


def load_sources(path: Path | None, env: Mapping[str, str]) -> list[SourceSpec]:
    """The sources `path` lists ([] without a file); `env` is where their secrets are read."""
    if path is None:
        return []
    raw = _read(path)
    if raw is None:
        return []
    if not isinstance(raw, dict) or set(raw) - {"sources"}:
        raise SourceConfigError(f"{path}: expected one top-level key, 'sources', holding a list of sources")
    entries = raw.get("sources") or []
    if not isinstance(entries, list):
        raise SourceConfigError(f"{path}: 'sources' must be a list (each item starting with '- name: ...')")
    specs: list[SourceSpec] = []
    mistakes: list[str] = []
    for number, entry in enumerate(entries, start=1):
        try:
            spec = _spec(entry, number, env)
        except SourceConfigError as exc:
            mistakes.append(f"{path}: {exc}")
            continue
        if any(s.name == spec.name for s in specs):
            mistakes.append(f"{path}: source {spec.name!r}: the name is used twice; each source needs its own")
            continue
        specs.append(spec)
    if mistakes:
        raise SourceConfigError("\n".join(mistakes))
    return specs


def _read(path: Path) -> Any:
    try:
        with path.open("rb") as handle:
            data = handle.read(_FILE_LIMIT + 1)
    except OSError as exc:
        raise SourceConfigError(f"{path}: cannot read the sources file ({exc.strerror or exc})") from None
    if len(data) > _FILE_LIMIT:
        raise SourceConfigError(f"{path}: larger than {_FILE_LIMIT // 1024} KB; a sources file is a few lines a source")
    try:
        return load_yaml(data.decode("utf-8", errors="replace"), "the sources file")
    except ValueError as exc:
        raise SourceConfigError(f"{path}: {exc}") from None


def _spec(entry: Any, number: int, env: Mapping[str, str]) -> SourceSpec:
    """One entry as a SourceSpec; raises SourceConfigError naming the entry and the key."""
    if not isinstance(entry, dict):
        raise SourceConfigError(f"source #{number}: expected 'name: ...', 'type: ...' and its settings")
    name = entry.get("name")
    if not isinstance(name, str) or not ROOT_NAME.fullmatch(name):
        shown = f"{name!r}" if isinstance(name, str | int | float) else "missing"
        raise SourceConfigError(
            f"source #{number}: 'name' is {shown}: use 1 to 64 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit (it becomes the first part of each document's path)"
        )
    if name == LEARNED_ROOT:
        raise SourceConfigError(
            f"source #{number}: 'name' {name!r} is the bot's own (the answers experts saved): choose another name"
        )
    where = f"source {name!r}"
    kind = entry.get("type")
    if not isinstance(kind, str) or kind not in MODULES:
        shown = f"is {kind!r}" if isinstance(kind, str) else "is missing"
        raise SourceConfigError(f"{where}: 'type' {shown}: use one of {', '.join(sorted(MODULES))}")
    where = f"{where} ({kind})"
    for key, value in entry.items():
        if not isinstance(key, str):
            raise SourceConfigError(f"{where}: the key {key!r} must be text")
        if key.lower() in _SECRET_KEYS:
            raise SourceConfigError(
                f"{where}: '{key}' would put a secret in the file: put it in an environment variable and "
                f"name that variable in '{key}_env'"
            )
        if key.endswith("_env") and (not isinstance(value, str) or not value.strip()):
            raise SourceConfigError(f"{where}: '{key}' must name an environment variable")
    settings = {k: v for k, v in entry.items() if k not in _COMMON_KEYS}
    return SourceSpec(name, kind, settings, _interval(entry, where), _answer_in(entry, where), env)


def _interval(entry: dict[str, Any], where: str) -> float:
    value = entry.get("interval_minutes", 60)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 1 <= value <= _MAX_INTERVAL:
        raise SourceConfigError(
            f"{where}: 'interval_minutes' must be a number of minutes from 1 to {_MAX_INTERVAL:.0f} (a week)"
        )
    return float(value)


def _answer_in(entry: dict[str, Any], where: str) -> tuple[str, ...] | None:
    if "answer_in" not in entry:
        return None
    value = entry["answer_in"]
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(i, str) and i.strip() for i in items):
        raise SourceConfigError(
            f"{where}: 'answer_in' must list channel ids (or 'default' for DMs and unlisted channels); "
            "leave it out to answer everywhere"
        )
    return tuple(dict.fromkeys(i.strip() for i in items))

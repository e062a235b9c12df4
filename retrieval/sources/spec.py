"""One source as the sources file declares it, with typed access to its settings and secrets.

Connectors read their settings through `SourceSpec`, so every bad value is reported the same way: one
line naming the source, the key and what it expects. Secrets are never in the file: a key ending in
`_env` names the environment variable that holds the secret, and only that name is ever shown.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from retrieval.errors import SourceConfigError

T = TypeVar("T")

EVERYWHERE = None  # SourceSpec.answer_in for a source that may answer in every channel


@dataclass(frozen=True)
class SourceSpec:
    name: str  # also its root's name: its documents are keyed NAME/path
    kind: str  # its `type` in the file: git, website, confluence, notion, gdrive
    settings: Mapping[str, Any] = field(default_factory=dict)  # the type's own keys
    interval_minutes: float = 60.0  # how often the running bot syncs it
    # None: answers everywhere. Otherwise the channel scopes (channel ids, or "default") it may answer in.
    answer_in: tuple[str, ...] | None = EVERYWHERE
    env: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)  # where secrets are read

    def error(self, message: str) -> SourceConfigError:
        return SourceConfigError(f"source {self.name!r} ({self.kind}): {message}")

    def get(self, key: str, kind: type[T], default: T | None = None) -> T:
        """The setting `key`, checked to be a `kind`; `default` when it is absent (None: required)."""
        value: Any = self.settings.get(key)
        if value is None:
            if default is None:
                raise self.error(f"'{key}' is required")
            return default
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.error(f"'{key}' must be {_kind_name(kind)}, got {type(value).__name__}")
        checked: T = value
        return checked

    def strings(self, key: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
        """A list of non-empty strings (one string is a list of one)."""
        value = self.settings.get(key)
        if value is None:
            return default
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(i, str) and i.strip() for i in items):
            raise self.error(f"'{key}' must be a list of non-empty strings")
        return tuple(i.strip() for i in items)

    def secret(self, key: str, required: bool = True) -> str | None:
        """The secret named by the setting `key` (which must end in `_env`): the value of the
        environment variable it names. Only the variable's name is ever shown."""
        if not key.endswith("_env"):
            raise ValueError(f"secret settings end in _env, not {key!r}")  # a connector bug, not the admin's
        variable = self.settings.get(key)
        if variable is None:
            if required:
                raise self.error(f"'{key}' is required: the name of the environment variable holding the secret")
            return None
        if not isinstance(variable, str) or not variable.strip():
            raise self.error(f"'{key}' must name an environment variable")
        value = self.env.get(variable.strip(), "")
        if not value.strip():
            raise self.error(f"the environment variable {variable.strip()} ('{key}') is not set or empty")
        return value.strip()


def _kind_name(kind: type) -> str:
    return {str: "text", int: "a whole number", float: "a number", bool: "true or false", list: "a list"}.get(
        kind, kind.__name__
    )

"""Who may ask where: the channel allowlist, per-channel doc scopes, and a per-user rate limit."""

from __future__ import annotations

import json
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bot.errors import ConfigError
from bot.settings import Settings
from retrieval.models import SearchFilter


class PolicyError(ConfigError):
    """A bad channel scopes file; the message says which file and what is wrong (QWENBOT_CHANNEL_SCOPES_FILE)."""


@dataclass(frozen=True)
class ChannelScopes:
    default: SearchFilter = SearchFilter()
    channels: dict[str, SearchFilter] = field(default_factory=dict)

    def for_channel(self, channel: str) -> SearchFilter:
        """The channel's scope; DMs and channels not listed get the default one."""
        return self.channels.get(channel, self.default)


def _scope(raw: Any, where: str) -> SearchFilter:
    if raw is None:
        return SearchFilter()
    if not isinstance(raw, dict) or set(raw) - {"path_prefixes", "tags"}:
        raise PolicyError(f"{where}: expected a mapping with 'path_prefixes' and/or 'tags'")
    values: dict[str, tuple[str, ...]] = {}
    for key in ("path_prefixes", "tags"):
        items = raw.get(key) or []
        if isinstance(items, str):
            items = [items]
        if not isinstance(items, list) or not all(isinstance(i, str) and i.strip() for i in items):
            raise PolicyError(f"{where}.{key}: expected a list of non-empty strings")
        values[key] = tuple(i.strip() for i in items)
    return SearchFilter(path_prefixes=values["path_prefixes"], tags=values["tags"])


def load_channel_scopes(path: Path | None) -> ChannelScopes:
    """Read the scopes file (YAML or JSON):

    default: {path_prefixes: [...], tags: [...]}   # DMs and unlisted channels; omit = all docs
    channels:
      C0123ABCD: {path_prefixes: [hr/], tags: [policy]}
    """
    if path is None:
        return ChannelScopes()
    try:
        text = path.read_text(encoding="utf-8")
        raw = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read the channel scopes file ({exc.strerror})") from None
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise PolicyError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}") from None
    raw = raw or {}
    if not isinstance(raw, dict) or set(raw) - {"default", "channels"}:
        raise PolicyError(f"{path}: expected top-level keys 'default' and/or 'channels'")
    channels = raw.get("channels") or {}
    if not isinstance(channels, dict):
        raise PolicyError(f"{path}: 'channels' must map channel ids to scopes")
    return ChannelScopes(
        default=_scope(raw.get("default"), f"{path}: default"),
        channels={str(cid): _scope(s, f"{path}: channels.{cid}") for cid, s in channels.items()},
    )


class RateLimiter:
    """At most `per_minute` questions per user in any 60 s window (0 = no limit). In memory: each
    bot replica counts on its own."""

    def __init__(self, per_minute: int, window_seconds: float = 60.0) -> None:
        self.per_minute = per_minute
        self.window = window_seconds
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, user: str, now: float | None = None) -> float:
        """0 if the user may ask now (and counts it), else the seconds until they may."""
        if self.per_minute <= 0:
            return 0.0
        now = time.monotonic() if now is None else now
        with self._lock:
            times = self._seen.setdefault(user, deque())
            while times and times[0] <= now - self.window:
                times.popleft()
            if len(times) >= self.per_minute:
                return times[0] + self.window - now
            times.append(now)
            return 0.0


@dataclass
class Policy:
    allowed_channels: frozenset[str]
    scopes: ChannelScopes
    limiter: RateLimiter

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        return cls(
            allowed_channels=frozenset(settings.allowed_channels),
            scopes=load_channel_scopes(settings.channel_scopes_file),
            limiter=RateLimiter(settings.rate_limit_per_minute),
        )

    def channel_allowed(self, channel: str, is_dm: bool) -> bool:
        """DMs are always allowed; channels when the allowlist is empty or names them."""
        return is_dm or not self.allowed_channels or channel in self.allowed_channels

    def scope_for(self, channel: str, is_dm: bool) -> SearchFilter:
        return self.scopes.default if is_dm else self.scopes.for_channel(channel)

    def wait_seconds(self, user: str) -> int:
        """0 when the user may ask; else whole seconds to wait."""
        return math.ceil(self.limiter.check(user))

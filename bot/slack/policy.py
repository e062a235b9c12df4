"""Who may ask where: the channel allowlist, per-channel doc scopes (with their suggested prompts and
owners' channel), doc owners' Slack user groups, and a per-user rate limit."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bot.config import SlackConfig
from bot.errors import ConfigError
from bot.state.limits import Limits
from bot.state.questions import QuestionPool
from retrieval.models import SearchFilter


class PolicyError(ConfigError):
    """A bad channel scopes file; the message says which file and what is wrong (QWENBOT_CHANNEL_SCOPES_FILE)."""


MAX_SUGGESTED_PROMPTS = 4  # Slack shows at most four
_CHANNEL_ID = re.compile(r"[CG][A-Z0-9]{6,}")
_GROUP_ID = re.compile(r"S[A-Z0-9]{6,}")


@dataclass(frozen=True)
class ScopeOptions:
    """What else a scope configures: prompts suggested in assistant threads while there is no history
    of questions, the channel where "Ask an owner" posts, and whether its public channels' questions
    may be suggested in its other channels that share theirs (never inherited from the default)."""

    suggested_prompts: tuple[str, ...] = ()
    ask_channel: str | None = None
    share_questions: bool = False


@dataclass(frozen=True)
class ChannelScopes:
    default: SearchFilter = SearchFilter()
    channels: dict[str, SearchFilter] = field(default_factory=dict)
    default_options: ScopeOptions = ScopeOptions()
    options: dict[str, ScopeOptions] = field(default_factory=dict)
    owner_groups: dict[str, str] = field(default_factory=dict)  # owner name, casefolded -> user group id

    def for_channel(self, channel: str) -> SearchFilter:
        """The channel's scope; DMs and channels not listed get the default one."""
        return self.channels.get(channel, self.default)

    def options_for(self, channel: str) -> ScopeOptions:
        """The channel's options; what it leaves out, the default scope's."""
        own = self.options.get(channel, self.default_options)
        return ScopeOptions(
            own.suggested_prompts or self.default_options.suggested_prompts,
            own.ask_channel or self.default_options.ask_channel,
            own.share_questions,
        )


_SCOPE_KEYS = {"path_prefixes", "tags", "suggested_prompts", "ask_channel", "share_questions"}


def _options(raw: Any, where: str) -> ScopeOptions:
    if not isinstance(raw, dict):
        return ScopeOptions()
    prompts = raw.get("suggested_prompts") or []
    if not isinstance(prompts, list) or not all(isinstance(p, str) and p.strip() for p in prompts):
        raise PolicyError(f"{where}.suggested_prompts: expected a list of questions")
    if len(prompts) > MAX_SUGGESTED_PROMPTS:
        raise PolicyError(f"{where}.suggested_prompts: Slack shows at most {MAX_SUGGESTED_PROMPTS}")
    ask = raw.get("ask_channel")
    if ask is not None and not (isinstance(ask, str) and _CHANNEL_ID.fullmatch(ask.strip())):
        raise PolicyError(f"{where}.ask_channel: expected a channel id like C0123ABCD, got {ask!r}")
    share = raw.get("share_questions", False)
    if not isinstance(share, bool):
        raise PolicyError(f"{where}.share_questions: expected true or false, got {share!r}")
    return ScopeOptions(tuple(p.strip() for p in prompts), ask.strip() if ask else None, share)


def _owner_groups(raw: Any, where: str) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise PolicyError(f"{where}: expected a mapping of owner names to Slack user group ids")
    groups = {}
    for name, group in raw.items():
        if not (isinstance(group, str) and _GROUP_ID.fullmatch(group.strip())):
            raise PolicyError(f"{where}.{name}: expected a user group id like S0123ABCD, got {group!r}")
        groups[str(name).strip().casefold()] = group.strip()
    return groups


def _scope(raw: Any, where: str) -> SearchFilter:
    if raw is None:
        return SearchFilter()
    if not isinstance(raw, dict) or set(raw) - _SCOPE_KEYS:
        raise PolicyError(f"{where}: expected a mapping with keys among {', '.join(sorted(_SCOPE_KEYS))}")
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
      C0123ABCD: {path_prefixes: [hr/], tags: [policy], suggested_prompts: [...], ask_channel: C0HROWNER,
                  share_questions: true}
    owners:
      People Operations: S0PEOPLEOP   # a doc owner (front matter `owner`) -> Slack user group id
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
    if not isinstance(raw, dict) or set(raw) - {"default", "channels", "owners"}:
        raise PolicyError(f"{path}: expected top-level keys among 'default', 'channels' and 'owners'")
    channels = raw.get("channels") or {}
    if not isinstance(channels, dict):
        raise PolicyError(f"{path}: 'channels' must map channel ids to scopes")
    return ChannelScopes(
        default=_scope(raw.get("default"), f"{path}: default"),
        channels={str(cid): _scope(s, f"{path}: channels.{cid}") for cid, s in channels.items()},
        default_options=_options(raw.get("default"), f"{path}: default"),
        options={str(cid): _options(s, f"{path}: channels.{cid}") for cid, s in channels.items()},
        owner_groups=_owner_groups(raw.get("owners"), f"{path}: owners"),
    )


class RateLimiter:
    """At most `per_minute` questions per user in any 60 s window (0 = no limit), counted in the
    bot's state: replicas sharing it share the limit."""

    def __init__(self, per_minute: int, limits: Limits, window_seconds: float = 60.0) -> None:
        self.per_minute = per_minute
        self.limits = limits
        self.window = window_seconds

    def check(self, user: str, now: float | None = None) -> float:
        """0 if the user may ask now (and counts it), else the seconds until they may."""
        if self.per_minute <= 0:
            return 0.0
        return self.limits.rate_check(user, self.per_minute, self.window, now)


@dataclass
class Policy:
    allowed_channels: frozenset[str]
    scopes: ChannelScopes
    limiter: RateLimiter

    @classmethod
    def from_config(cls, config: SlackConfig, limits: Limits) -> Policy:
        return cls(
            allowed_channels=frozenset(config.allowed_channels),
            scopes=load_channel_scopes(config.channel_scopes_file),
            limiter=RateLimiter(config.rate_limit_per_minute, limits),
        )

    def channel_allowed(self, channel: str, is_dm: bool) -> bool:
        """DMs are always allowed; channels when the allowlist is empty or names them."""
        return is_dm or not self.allowed_channels or channel in self.allowed_channels

    def scope_for(self, channel: str, is_dm: bool, viewing: str | None = None) -> SearchFilter:
        """`viewing`: in an assistant thread, the channel the user is looking at; its scope applies."""
        if viewing:
            return self.scopes.for_channel(viewing)
        return self.scopes.default if is_dm else self.scopes.for_channel(channel)

    def options_for(self, channel: str, is_dm: bool, viewing: str | None = None) -> ScopeOptions:
        if viewing:
            return self.scopes.options_for(viewing)
        return self.scopes.default_options if is_dm else self.scopes.options_for(channel)

    def question_pool(self, viewing: str | None) -> QuestionPool:
        """Where the questions suggested to someone viewing `viewing` may come from: that channel, and
        when its scope says `share_questions`, the public channels of the same scope that say so too
        (listed with the same doc filter; for the default scope, the channels not listed)."""
        scopes = self.scopes
        if not scopes.options_for(viewing or "").share_questions:
            return QuestionPool(viewing)
        if viewing is None or viewing not in scopes.channels:
            return QuestionPool(viewing, public_outside=tuple(sorted(scopes.channels)))
        scope = scopes.channels[viewing]
        sharing = [c for c, s in scopes.channels.items() if s == scope and scopes.options_for(c).share_questions]
        return QuestionPool(viewing, public_in=tuple(sorted(sharing)))

    def wait_seconds(self, user: str) -> int:
        """0 when the user may ask; else whole seconds to wait."""
        return math.ceil(self.limiter.check(user))

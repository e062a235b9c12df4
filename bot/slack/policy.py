"""Who may ask where: the channel allowlist, per-channel doc scopes (with their suggested prompts and
owners' channel), doc owners' Slack user groups, and a per-user rate limit."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from bot.config import SlackConfig
from bot.errors import ConfigError
from bot.knowledge.scopes import known_keys, scope_key, with_learned
from bot.scopes import SCOPE_KEYS, ScopeSpec, named_source, parse_scope, without_sources
from bot.state.limits import Limits
from bot.state.questions import QuestionPool
from retrieval.models import SearchFilter
from retrieval.sources.spec import SourceSpec


class PolicyError(ConfigError):
    """A bad channel scopes file; the message says which file and what is wrong (QWENBOT_CHANNEL_SCOPES_FILE)."""


MAX_SUGGESTED_PROMPTS = 4  # Slack shows at most four
_CHANNEL_ID = re.compile(r"[CG][A-Z0-9]{6,}")
_GROUP_ID = re.compile(r"S[A-Z0-9]{6,}")


@dataclass(frozen=True)
class ScopeOptions:
    """What else a scope configures: prompts suggested in assistant threads while there is no history
    of questions, the channel where "Ask an owner" posts, and whether its public channels' questions
    may be suggested in its other channels that share theirs (never inherited from the default); its
    experts' user group (mentioned when a thread is escalated), and whether a channel answers every
    question asked in it without a mention (`mode: auto`; a channel's own, never inherited), and
    whether a mention there is answered to the asker alone first (`answers: private`; a channel's own)."""

    suggested_prompts: tuple[str, ...] = ()
    ask_channel: str | None = None
    share_questions: bool = False
    experts: str | None = None
    auto: bool = False
    private_answers: bool = False
    resolved_threads: bool = False  # ✅ on a thread's reply saves it as a learned answer (Policy.resolved_threads)


@dataclass(frozen=True)
class ChannelScopes:
    default: SearchFilter = SearchFilter()
    channels: dict[str, SearchFilter] = field(default_factory=dict)
    default_options: ScopeOptions = ScopeOptions()
    options: dict[str, ScopeOptions] = field(default_factory=dict)
    owner_groups: dict[str, str] = field(default_factory=dict)  # owner name, casefolded -> user group id
    # the sources each scope names ("default" or a channel id -> source names), already in its filter
    named_sources: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def with_sources(self, sources: Sequence[SourceSpec], where: Path | None) -> ChannelScopes:
        """These scopes with the sources file applied: a source that answers only in some channels
        (`answer_in`: ids listed here, or "default") is excluded from every other scope's filter, so its
        documents are never cited elsewhere. A scope naming an unknown source, a source named by a scope
        it may not answer in, or an answer_in naming a channel this file does not list: a PolicyError."""
        origin = str(where) if where is not None else "the channel scopes file (QWENBOT_CHANNEL_SCOPES_FILE is unset)"
        specs = {spec.name: spec for spec in sources}
        for scope, names in self.named_sources.items():
            for name in names:
                allowed = named_source(name, specs, f"{origin}: {_label(scope)}", PolicyError).answer_in
                if allowed is not None and scope not in allowed:
                    raise PolicyError(
                        f"{origin}: {_label(scope)}.sources names {name!r}, whose answer_in does not include "
                        f"{scope!r}: add it there, or take the source out of this scope"
                    )
        for spec in sources:
            unknown = [c for c in spec.answer_in or () if c != DEFAULT_SCOPE and c not in self.channels]
            if unknown:
                raise PolicyError(
                    f"source {spec.name!r}: answer_in names {', '.join(unknown)}, which {origin} does not list: "
                    f"add {'it' if len(unknown) == 1 else 'them'} under 'channels' there, or use '{DEFAULT_SCOPE}'"
                )
        default = without_sources(self.default, sources, _answers_in(DEFAULT_SCOPE))
        channels = {c: without_sources(flt, sources, _answers_in(c)) for c, flt in self.channels.items()}
        return replace(self, default=default, channels=channels)

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
            own.experts or self.default_options.experts,
            own.auto if channel in self.options else False,
            own.private_answers if channel in self.options else False,
            own.resolved_threads,
        )


_SCOPE_KEYS = {
    *SCOPE_KEYS,
    "suggested_prompts",
    "ask_channel",
    "share_questions",
    "experts",
    "mode",
    "answers",
    "resolved_threads",
}
DEFAULT_SCOPE = "default"  # in a source's answer_in: DMs and the channels the scopes file does not list


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
    experts = raw.get("experts")
    if experts is not None and not (isinstance(experts, str) and _GROUP_ID.fullmatch(experts.strip())):
        raise PolicyError(f"{where}.experts: expected a user group id like S0123ABCD, got {experts!r}")
    mode = raw.get("mode", "mention")
    if mode not in ("mention", "auto"):
        raise PolicyError(f"{where}.mode: expected mention or auto, got {mode!r}")
    answers = raw.get("answers", "public")
    if answers not in ("public", "private"):
        raise PolicyError(f"{where}.answers: expected public or private, got {answers!r}")
    resolved = raw.get("resolved_threads", False)
    if not isinstance(resolved, bool):
        raise PolicyError(f"{where}.resolved_threads: expected true or false, got {resolved!r}")
    return ScopeOptions(
        tuple(p.strip() for p in prompts),
        ask.strip() if ask else None,
        share,
        experts and experts.strip(),
        mode == "auto",
        answers == "private",
        resolved,
    )


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


def _scope(raw: Any, where: str) -> ScopeSpec:
    if raw is None:
        return ScopeSpec()
    if not isinstance(raw, dict) or set(raw) - _SCOPE_KEYS:
        raise PolicyError(f"{where}: expected a mapping with keys among {', '.join(sorted(_SCOPE_KEYS))}")
    return parse_scope(raw, where, PolicyError)  # its sources: checked by ChannelScopes.with_sources


def _answers_in(scope: str) -> Callable[[SourceSpec], bool]:
    return lambda spec: scope in (spec.answer_in or ())


def _label(scope: str) -> str:
    return scope if scope == DEFAULT_SCOPE else f"channels.{scope}"


def load_channel_scopes(path: Path | None) -> ChannelScopes:
    """Read the scopes file (YAML or JSON):

    default: {path_prefixes: [...], tags: [...]}   # DMs and unlisted channels; omit = all docs
    channels:
      C0123ABCD: {path_prefixes: [hr/], tags: [policy], sources: [handbook], suggested_prompts: [...],
                  ask_channel: C0HROWNER,
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
    default = _scope(raw.get("default"), f"{path}: default")
    scopes = {str(cid): _scope(s, f"{path}: channels.{cid}") for cid, s in channels.items()}
    return ChannelScopes(
        default=default.filter,
        channels={cid: scope.filter for cid, scope in scopes.items()},
        default_options=_options(raw.get("default"), f"{path}: default"),
        options={str(cid): _options(s, f"{path}: channels.{cid}") for cid, s in channels.items()},
        owner_groups=_owner_groups(raw.get("owners"), f"{path}: owners"),
        named_sources={k: scope.sources for k, scope in {DEFAULT_SCOPE: default, **scopes}.items() if scope.sources},
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
    channel_limiter: RateLimiter | None = None  # answers per channel in auto mode

    @classmethod
    def from_config(cls, config: SlackConfig, limits: Limits, sources: Sequence[SourceSpec] = ()) -> Policy:
        """`sources`: the sources file's entries, whose answer_in restricts where their documents answer."""
        scopes = load_channel_scopes(config.channel_scopes_file).with_sources(sources, config.channel_scopes_file)
        default, channels = with_learned(scopes.default, scopes.channels)  # learned answers stay in their scope
        return cls(
            allowed_channels=frozenset(config.allowed_channels),
            scopes=replace(scopes, default=default, channels=channels),
            limiter=RateLimiter(config.rate_limit_per_minute, limits),
            channel_limiter=RateLimiter(config.auto_channel_per_minute, limits),
        )

    def learned_key(self, channel: str) -> str:
        """The scope key a learned answer saved in `channel` is filed under (bot/knowledge/scopes.py)."""
        return scope_key(self.scopes.for_channel(channel), self.scopes.default)

    def learned_keys(self) -> set[str]:
        return known_keys(self.scopes.default, self.scopes.channels)

    def resolved_threads(self, channel: str, kind: str | None) -> bool:
        """Whether a ✅ in `channel`'s threads saves the thread as a learned answer: a channel listed with
        `resolved_threads: true` (a private one too: the admin named it), or one not listed when `default`
        says so and it is public (`kind`, the channel's type as its message events said). Never a DM."""
        if channel.startswith("D"):
            return False
        if channel in self.scopes.options:
            return self.scopes.options[channel].resolved_threads
        return self.scopes.default_options.resolved_threads and kind == "channel"

    def channel_wait_seconds(self, channel: str) -> int:
        """Auto mode: 0 when the channel may get another answer now; else whole seconds to wait."""
        return math.ceil(self.channel_limiter.check(f"channel:{channel}")) if self.channel_limiter else 0

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

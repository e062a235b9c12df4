"""Each part's slice of the settings: a frozen record of only the settings that part reads.

`Settings` (bot/settings.py) stays the one flat class read from `.env` and the environment; its
`llm_config()`, `answer_config()`, `slack_config()`, `state_config()`, `gaps_config()`,
`indexing_config()`, `sources_config()`, `health_config()`, `log_config()` and `index_config()` (retrieval/config.py)
build these. A part takes its slice, so what it depends on is written in its signature and a test
builds one without the other ~80 settings. Field names are the
settings' own (so `llm_model` is QWENBOT_LLM_MODEL), except where a slice says otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import SecretStr

from retrieval.config import IndexConfig

Provider = Literal["vllm", "sglang", "llamacpp", "ollama", "dashscope", "openai"]
QueryRewrite = Literal["off", "heuristic", "model"]  # how a follow-up in a thread is searched
FeedbackStyle = Literal["native", "buttons"]
GapsInclude = Literal["public", "channels", "all"]  # which conversations the knowledge-gap report shows
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
LogFormat = Literal["text", "json"]


@dataclass(frozen=True)
class LLMConfig:
    """The model endpoint and how to call it (bot/llm)."""

    llm_base_url: str | None  # None: no model, answers are extractive
    llm_api_key: SecretStr
    llm_model: str
    llm_provider: Provider
    llm_thinking: bool
    llm_temperature: float | None  # None: Qwen's model-card default
    llm_top_p: float | None
    llm_top_k: int | None
    llm_max_tokens: int
    llm_connect_timeout: float
    llm_read_timeout: float
    llm_retries: int
    llm_total_timeout: float


@dataclass(frozen=True)
class AnswerConfig:
    """What the answer pipeline needs (bot/answer): how deep to search, when to abstain, how follow-ups
    are searched, and the prompt's budget and system prompt."""

    top_k: int
    reranker: str  # empty: off; which kind decides the abstain threshold
    abstain_min_coverage: float
    abstain_rerank_min_local: float | None
    abstain_rerank_min_endpoint: float | None
    query_rewrite: QueryRewrite
    query_rewrite_timeout: float
    llm_context_window: int
    llm_max_tokens: int  # the output reserve, kept out of the prompt's budget
    system_prompt_file: Path | None


@dataclass(frozen=True)
class SlackConfig:
    """The Slack app (bot/slack): credentials, where it answers and how, and the Events API's limits."""

    slack_bot_token: SecretStr | None
    slack_app_token: SecretStr | None
    slack_signing_secret: SecretStr | None
    slack_api_url: str
    slack_connect_timeout: float
    allowed_channels: tuple[str, ...]
    admin_users: tuple[str, ...]
    channel_scopes_file: Path | None
    follow_up_without_mention: bool
    answer_other_bots: bool
    rate_limit_per_minute: int
    stale_source_days: int
    allow_mailto_links: bool
    feedback_style: FeedbackStyle
    suggest_min_askers: int  # askers a suggested prompt needs (assistant threads)
    auto_channel_per_minute: int  # answers a minute per channel in auto mode; 0: no limit
    auto_unsure_reaction: bool  # auto mode: 👀 on a question it is not sure of (else silence)
    http_max_body_bytes: int
    http_max_connections: int
    http_read_timeout: float


@dataclass(frozen=True)
class StateConfig:
    """The bot's state (bot/state): the SQLite file, or the PostgreSQL database replicas share."""

    state_db: Path
    state_url: SecretStr | None  # set: PostgreSQL, and state_db is not used
    state_pool_size: int
    claim_lease_seconds: float
    dedupe_ttl_hours: float


@dataclass(frozen=True)
class GapsConfig:
    """The knowledge-gap digest (bot/gaps/digest.py): where and when it is posted, and what it shows."""

    gaps_channel: str | None  # None: no digest
    gaps_schedule: str  # "mon 09:00", "daily 09:00" (checked by the settings)
    gaps_timezone: str
    gaps_include: GapsInclude


@dataclass(frozen=True)
class IndexingConfig:
    """A running bot's indexing (bot/indexing/service.py, watch.py): the docs folder into its index."""

    docs_dir: Path
    index: IndexConfig
    drain_seconds: float  # at shutdown: how long an index job in progress gets to end
    # SHARED_WITH_BOT (bot/settings.py) by variable name, as the bot read them: what it tells a terminal
    shared_with_bot: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class HealthConfig:
    """What the bot's status report says of its settings (bot/health.py)."""

    llm_base_url: str | None
    llm_model: str
    reindex_interval_minutes: float
    watch_docs: bool


@dataclass(frozen=True)
class LogConfig:
    """The bot's logging (bot/logs.py)."""

    log_level: LogLevel
    log_format: LogFormat
    # Key of the hashed user ids: QWENBOT_LOG_USER_SALT, else SLACK_BOT_TOKEN (the hashes then change
    # when the token is rotated); None: neither is set
    user_hash_key: SecretStr | None


@dataclass(frozen=True)
class SourcesConfig:
    """The sources a running bot keeps in sync and the commands that show them (bot/sources/): the file
    listing them, where their mirrors live, and where their secret variables are read."""

    sources_file: Path | None  # None: no sources beyond the docs folder
    sources_dir: Path  # <sources_dir>/<name>/mirror (indexed as root <name>) and <name>/work
    # the environment (over the settings file's values): secrets are read here by variable name, never shown
    env: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class McpConfig:
    """The MCP server (bot/mcp/): where it listens, who may call it over HTTP, and what stdio searches."""

    mcp_host: str
    mcp_port: int  # 0: not served by `run`
    mcp_tokens_file: Path | None  # the hashed bearer tokens (bot/mcp/auth.py); None: HTTP serves nobody
    mcp_scope_paths: tuple[str, ...]  # stdio's scope; both empty: every document
    mcp_scope_tags: tuple[str, ...]
    mcp_rate_limit_per_minute: int  # per token, where its line sets none; 0: off

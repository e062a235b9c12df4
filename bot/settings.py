"""All configuration, read once (`.env`, then the environment) into one flat object; each part takes
its own slice of it (bot/config.py, retrieval/config.py), built by the `*_config()` methods."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dotenv import dotenv_values
from pydantic import Field, PrivateAttr, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from pydantic_settings import SettingsError as SourceError

from bot.config import (
    AnswerConfig,
    GapsConfig,
    GapsInclude,
    HealthConfig,
    IndexingConfig,
    LLMConfig,
    LogConfig,
    LogFormat,
    LogLevel,
    McpConfig,
    Provider,
    QueryRewrite,
    SlackConfig,
    SourcesConfig,
    StateConfig,
)
from bot.config import FeedbackStyle as FeedbackStyle  # bot/slack/render/ imports it from here
from bot.errors import ConfigError
from bot.text import redact_url
from retrieval.config import DEFAULT_EMBEDDING_MODEL, EmbeddingBackend, EmbeddingQuantize, IndexConfig

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

_Slice = TypeVar("_Slice", bound="DataclassInstance")  # a part's settings (bot/config.py)


class SettingsError(ConfigError):
    """A bad setting; `str()` is one line naming the variable and what it expects."""


# Numeric settings whose default is "unset": an empty value leaves them unset.
_OPTIONAL_NUMBERS = (
    "embedding_batch_size",
    "llm_temperature",
    "llm_top_p",
    "llm_top_k",
    "abstain_rerank_min_local",
    "abstain_rerank_min_endpoint",
)


# What a running bot's index jobs and searches use: `qwenbot index` and `ask` hand their work to it
# (bot/indexing/control.py), so a terminal compares these with the bot's and names any that differ (a bot reads
# its settings only at start).
SHARED_WITH_BOT = (
    "docs_dir",
    "collection",
    "embedding_model",
    "embedding_backend",
    "embedding_quantize",
    "embedding_url",
    "embedding_query_instruction",
    "embedding_passage_prefix",
    "chunk_tokens",
    "chunk_overlap_tokens",
    "dense_weight",
    "lexical_weight",
    "reranker",
    "rerank_candidates",
    "max_file_mb",
    "follow_symlinks_outside",
    "exclude",
)
# Settings that are one of a few words: matched without regard to case (QWENBOT_LOG_FORMAT=JSON).
_CHOICES = ("log_format", "llm_provider", "embedding_backend", "embedding_quantize", "query_rewrite", "feedback_style")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="QWENBOT_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
    )

    # --- index and search ---
    docs_dir: Path = Path("docs_corpus")
    index_dir: Path = Path(".qwenbot/index")
    collection: str = "qwenbot"
    chroma_host: str | None = None
    chroma_port: int = Field(8000, ge=1, le=65535)
    chroma_ssl: bool = False
    embedding_model: str = DEFAULT_EMBEDDING_MODEL
    embedding_device: str = "cpu"
    embedding_batch_size: int | None = Field(None, ge=1)  # None: 8 on the CPU, 64 on a GPU
    embedding_backend: EmbeddingBackend = "onnx"
    embedding_quantize: EmbeddingQuantize = "none"
    embedding_cache_dir: Path | None = None  # None: ~/.cache/qwenbot/onnx
    # set: embed through this OpenAI-compatible /v1/embeddings, QWENBOT_EMBEDDING_MODEL naming the served model
    embedding_url: str = ""
    embedding_api_key: SecretStr = SecretStr("")
    embedding_timeout: float = Field(30.0, gt=0)  # seconds per request to the endpoint
    embedding_retry_seconds: float = Field(60.0, ge=0)  # how long an indexing batch is retried
    embedding_query_instruction: str = ""  # before questions only; a literal \n is a line break
    embedding_passage_prefix: str = ""  # before chunks only
    chunk_tokens: int = Field(200, ge=32, le=512)
    chunk_overlap_tokens: int = Field(40, ge=0)
    dense_weight: float = Field(1.0, ge=0)
    lexical_weight: float = Field(1.0, ge=0)
    top_k: int = Field(6, ge=1, le=50)
    reranker: str = ""  # empty: off; a CrossEncoder name or folder, or an http(s):// rerank endpoint
    rerank_candidates: int = Field(30, ge=1, le=200)
    rerank_timeout: float = Field(3.0, gt=0)
    reindex_interval_minutes: float = Field(0, ge=0)  # 0 = off; >0 = the bot re-indexes docs_dir itself
    index_on_start: bool = True  # the bot indexes new and changed docs when it starts (in the background)
    watch_docs: bool = False  # the bot indexes docs_dir's changes within seconds of them (watchfiles)
    max_file_mb: float = Field(10, gt=0)  # larger files are skipped, with a warning naming them
    follow_symlinks_outside: bool = False  # read files whose real path is outside the indexed folder
    # globs of files and folders kept out of every root, comma-separated (retrieval/exclude.py)
    exclude: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # sources beyond the docs folder (git, website, Confluence, Notion, Drive: bot/sources/), synced by the bot
    sources_file: Path | None = None  # the sources YAML file (deploy/sources.example.yml); unset: none
    sources_dir: Path | None = None  # each source's mirror and work folders; None: <index_dir>/sources

    # --- LLM endpoint (OpenAI-compatible) ---
    llm_base_url: str | None = None  # unset: extractive answers only
    llm_api_key: SecretStr = SecretStr("")
    llm_model: str = "Qwen/Qwen3-8B"
    llm_provider: Provider = "vllm"
    llm_thinking: bool = False
    llm_temperature: float | None = Field(None, ge=0, le=2)  # None: Qwen's model-card default
    llm_top_p: float | None = Field(None, gt=0, le=1)
    llm_top_k: int | None = Field(None, ge=1)
    llm_max_tokens: int = Field(1024, ge=16)
    llm_context_window: int = Field(32768, ge=1024)
    llm_connect_timeout: float = Field(5.0, gt=0)
    llm_read_timeout: float = Field(60.0, gt=0)
    llm_retries: int = Field(2, ge=0, le=10)
    llm_total_timeout: float = Field(90.0, gt=0)  # no answer waits longer than this on the model
    system_prompt_file: Path | None = None
    # The "not in the docs" rule (bot/answer/abstain.py, calibrated by bench/calibrate_abstain.py): when dense
    # and keyword search disagree on the best document and the top passage holds less than this share of
    # the question's terms (IDF-weighted), the model is not asked. Extractive mode needs twice the share.
    abstain_min_coverage: float = Field(0.28, ge=0, le=1)
    # Best reranker score below this: not in the docs. One per reranker kind, as their scales differ (a local
    # CrossEncoder's output depends on its activation; /rerank endpoints return 0..1). None: not checked.
    abstain_rerank_min_local: float | None = None
    abstain_rerank_min_endpoint: float | None = None
    # A follow-up in a thread: searched alone (off), with its thread (heuristic), or also with a standalone
    # query the model writes (model; falls back to the heuristic after query_rewrite_timeout seconds).
    query_rewrite: QueryRewrite = "heuristic"
    query_rewrite_timeout: float = Field(4.0, gt=0, le=30)

    # --- Slack ---
    slack_bot_token: SecretStr | None = Field(None, validation_alias="SLACK_BOT_TOKEN")
    slack_app_token: SecretStr | None = Field(None, validation_alias="SLACK_APP_TOKEN")
    slack_signing_secret: SecretStr | None = Field(None, validation_alias="SLACK_SIGNING_SECRET")
    slack_api_url: str = "https://slack.com/api/"
    slack_connect_timeout: float = Field(30.0, gt=0)  # `run`: seconds for Socket Mode to say hello, else exit
    # NoDecode: a comma-separated list in the environment, not JSON
    allowed_channels: Annotated[list[str], NoDecode] = Field(default_factory=list)  # empty: every channel the bot is in
    admin_users: Annotated[list[str], NoDecode] = Field(default_factory=list)  # Slack user ids: `/qwenbot reindex`
    channel_scopes_file: Path | None = None
    follow_up_without_mention: bool = True
    answer_other_bots: bool = False
    rate_limit_per_minute: int = Field(6, ge=0)  # per user; 0 = off
    stale_source_days: int = Field(365, ge=1)
    allow_mailto_links: bool = False  # a document's mailto: url becomes a link in Sources (else: title only)
    state_db: Path = Path(".qwenbot/state.sqlite3")
    # postgresql://user:pass@host:5432/db: the state shared by bot replicas (claims, leases, thread
    # turns, rate limits, questions, feedback); unset: the SQLite file state_db
    state_url: SecretStr | None = None
    state_pool_size: int = Field(10, ge=1, le=200)  # PostgreSQL connections per replica, at most
    # An answer in progress holds a lease, renewed while it runs; when its replica dies, another
    # replica answers the question once the lease has run out
    claim_lease_seconds: float = Field(30, ge=1)
    dedupe_ttl_hours: float = Field(24, gt=0)
    # On SIGTERM / SIGINT: seconds answers in progress get to finish before the bot cuts them off and
    # exits. Keep it below the platform's grace period (Kubernetes: terminationGracePeriodSeconds).
    drain_seconds: float = Field(30, ge=0)
    # `run --http`: limits of the Events API endpoint (a request over them gets 413 / 408 / 503)
    http_max_body_bytes: int = Field(1024 * 1024, ge=1024)
    http_max_connections: int = Field(1000, ge=1)
    http_read_timeout: float = Field(10, gt=0)  # seconds to send the request headers, and then the body
    log_level: LogLevel = "INFO"
    log_format: LogFormat = "text"  # json: one object per line, for log shippers
    # Key of the hashed user id in the question log lines; unset: derived from SLACK_BOT_TOKEN (the
    # hashes then change when the token is rotated)
    log_user_salt: SecretStr | None = None
    # /metrics (Prometheus) and /healthz on a port of their own, in any mode; `run --http` then serves
    # /slack/events alone on its public port. 0 = off: `run --http` serves all three
    metrics_port: int = Field(0, ge=0, le=65535)
    metrics_host: str = "0.0.0.0"
    # Feedback under each answer: Slack's native thumbs (a context_actions block) or plain buttons,
    # for workspaces where the native element is not available yet.
    feedback_style: FeedbackStyle = "native"
    # The knowledge-gap digest (bot/gaps/): questions the docs did not answer or that were rated 👎,
    # posted to this channel on the schedule ("mon 09:00", or "daily 09:00") in this time zone. Unset: off.
    gaps_channel: str | None = None
    gaps_schedule: str = "mon 09:00"
    gaps_timezone: str = "UTC"
    # Privacy across channels: the digest and `qwenbot gaps` show questions from public channels only
    # (channels: private channels and group DMs too; all: DMs too). A suggested prompt must have been
    # asked by this many different people, in the channel being viewed or a public one its scope shares.
    gaps_include: GapsInclude = "public"
    suggest_min_askers: int = Field(3, ge=1)
    # Knowledge (bot/knowledge/): channels in `mode: auto` (channel scopes file) get answers without a
    # mention, at most this many a minute per channel (0 = no limit); an unsure answer stays unsaid, or
    # with this on gets a 👀 reaction. An expert's saved answer is archived after this many days (0 = never).
    auto_channel_per_minute: int = Field(10, ge=0)
    auto_unsure_reaction: bool = False
    learned_expiry_days: int = Field(365, ge=0)
    # `qwenbot mcp` (bot/mcp/): the index as an MCP server. Over HTTP every request carries a bearer token
    # from the tokens file (hashed, each with its scope and rate limit); `qwenbot run` serves it too when
    # the port is set. stdio (desktop and IDE clients) searches the scope given here (empty: every doc).
    mcp_port: int = Field(0, ge=0, le=65535)  # 0: `run` serves no MCP; `mcp --http` then needs --port
    mcp_host: str = "127.0.0.1"
    mcp_tokens_file: Path | None = None
    mcp_scope_paths: Annotated[list[str], NoDecode] = Field(default_factory=list)
    mcp_scope_tags: Annotated[list[str], NoDecode] = Field(default_factory=list)
    mcp_rate_limit_per_minute: int = Field(60, ge=0)  # per token, where its line sets none; 0 = off

    @field_validator("state_url")
    @classmethod
    def _postgres_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            return None
        if value is not None and urlsplit(value.get_secret_value().strip()).scheme not in ("postgresql", "postgres"):
            raise ValueError("must be a postgresql://user:password@host:5432/database URL (or empty: SQLite)")
        return value

    @field_validator("llm_base_url", "slack_api_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and value.strip() and urlsplit(value.strip()).scheme not in ("http", "https"):
            raise ValueError("must start with http:// or https://")
        return value.strip() if value else value

    @field_validator("allowed_channels")
    @classmethod
    def _channel_ids(cls, value: list[str]) -> list[str]:
        return _ids(
            value, "[CGD]", "is not a channel id: use ids like C0123ABCD (channel details > About, at the bottom)"
        )

    @field_validator("admin_users")
    @classmethod
    def _user_ids(cls, value: list[str]) -> list[str]:
        return _ids(value, "[UW]", "is not a Slack user id: use ids like U0123ABCD (profile > ⋮ > Copy member ID)")

    @field_validator("gaps_channel")
    @classmethod
    def _gaps_channel_id(cls, value: str | None) -> str | None:
        value = (value or "").strip() or None
        return _ids([value], "[CG]", "is not a channel id: use an id like C0123ABCD")[0] if value else None

    @field_validator("gaps_schedule")
    @classmethod
    def _gaps_schedule(cls, value: str) -> str:
        parse_schedule(value)  # raises ValueError naming what is wrong
        return value.strip()

    @field_validator("gaps_timezone")
    @classmethod
    def _gaps_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value.strip())
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("not a time zone name: use one like Europe/Berlin or UTC") from None
        return value.strip()

    @field_validator(*_OPTIONAL_NUMBERS, mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # `QWENBOT_LLM_TOP_K=` (as .env.example shows these) means "the default", not a parse error
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator(*_CHOICES, mode="before")
    @classmethod
    def _lower_choice(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("allowed_channels", "admin_users", "exclude", "mcp_scope_paths", "mcp_scope_tags", mode="before")
    @classmethod
    def _split_channels(cls, value: object) -> object:
        if isinstance(value, str):
            return [c.strip() for c in value.split(",") if c.strip()]
        return value

    _file: Path | None = PrivateAttr(None)  # the settings file read (load_settings)
    _overridden: frozenset[str] = PrivateAttr(frozenset())  # fields given in code, not read (load_settings)

    @property
    def settings_file(self) -> Path | None:
        """The settings file these settings were read from (then overridden by the environment)."""
        return self._file

    def shared_with_bot(self) -> dict[str, str]:
        """SHARED_WITH_BOT by variable name, as text to compare: paths made absolute (not resolved: a
        docs folder that is a symlink swapped by git-sync is still the same setting)."""
        return {_env_name((f,)): _comparable(getattr(self, f)) for f in SHARED_WITH_BOT}

    def changed_since_read(self) -> list[str]:
        """The SHARED_WITH_BOT variables that read differently now from the same settings file and the
        environment: a running bot keeps what it read at start, so an edited .env needs a restart. A
        file that no longer reads is left to the commands that read it; nothing is named then."""
        try:
            now = load_settings(self._file or os.devnull)
        except ConfigError:
            return []
        kept = {_env_name((f,)) for f in self._overridden}
        before, after = self.shared_with_bot(), now.shared_with_bot()
        return [name for name in before if name not in kept and before[name] != after[name]]

    def origin(self, field: str) -> str:
        """Where a setting's value came from, and so what a relative path in it is relative to."""
        name = _env_name((field,))
        if name.upper() in {n.upper() for n in os.environ}:
            return "set in the environment"
        if self._file is not None and name.upper() in {n.upper() for n in file_values(self._file)}:
            return f"set in {self._file.absolute()}, relative to its folder"
        where = f"not set in {self._file.absolute()}" if self._file is not None else f"no .env in {Path.cwd()}"
        return f"the default, relative to the current folder; {where}"

    def index_config(self, index_dir: Path | None = None) -> IndexConfig:
        return IndexConfig(
            index_dir=index_dir or self.index_dir,
            collection=self.collection,
            chroma_host=self.chroma_host,
            chroma_port=self.chroma_port,
            chroma_ssl=self.chroma_ssl,
            embedding_model=self.embedding_model,
            embedding_device=self.embedding_device,
            embedding_batch_size=self.embedding_batch_size,
            embedding_backend=self.embedding_backend,
            embedding_quantize=self.embedding_quantize,
            embedding_cache_dir=self.embedding_cache_dir,
            embedding_url=self.embedding_url,
            embedding_api_key=self.embedding_api_key.get_secret_value(),
            embedding_timeout=self.embedding_timeout,
            embedding_retry_seconds=self.embedding_retry_seconds,
            embedding_query_instruction=self.embedding_query_instruction.replace("\\n", "\n"),
            embedding_passage_prefix=self.embedding_passage_prefix.replace("\\n", "\n"),
            chunk_tokens=self.chunk_tokens,
            chunk_overlap_tokens=self.chunk_overlap_tokens,
            dense_weight=self.dense_weight,
            lexical_weight=self.lexical_weight,
            reranker=self.reranker,
            rerank_candidates=self.rerank_candidates,
            rerank_timeout=self.rerank_timeout,
            max_file_bytes=int(self.max_file_mb * 1024 * 1024),
            follow_symlinks_outside=self.follow_symlinks_outside,
            exclude=tuple(self.exclude),
        )

    def llm_config(self) -> LLMConfig:
        return self._slice(LLMConfig)

    def answer_config(self) -> AnswerConfig:
        return self._slice(AnswerConfig)

    def slack_config(self) -> SlackConfig:
        return self._slice(SlackConfig)

    def state_config(self) -> StateConfig:
        return self._slice(StateConfig)

    def gaps_config(self) -> GapsConfig:
        return self._slice(GapsConfig)

    def indexing_config(self) -> IndexingConfig:
        return IndexingConfig(
            self.docs_dir, self.index_config(), self.drain_seconds, tuple(self.shared_with_bot().items())
        )

    def sources_config(self) -> SourcesConfig:
        # a source's secret variable may be set in the settings file too; the environment wins
        env = {k: v for k, v in file_values(self._file).items() if v is not None} | dict(os.environ)
        return SourcesConfig(self.sources_file, self.sources_dir or self.index_dir / "sources", env)

    def health_config(self) -> HealthConfig:
        return self._slice(HealthConfig)

    def mcp_config(self) -> McpConfig:
        return self._slice(McpConfig)

    def log_config(self) -> LogConfig:
        return LogConfig(self.log_level, self.log_format, self.log_user_salt or self.slack_bot_token)

    def _slice(self, kind: type[_Slice]) -> _Slice:
        """A slice whose fields are settings of the same names; lists become tuples (slices are frozen)."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(kind)}
        return kind(**{name: tuple(v) if isinstance(v, list) else v for name, v in values.items()})


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def parse_schedule(text: str) -> tuple[int | None, int, int]:
    """A schedule as (weekday or None for daily, hour, minute): "mon 09:00" -> (0, 9, 0), "daily 09:00"
    -> (None, 9, 0). ValueError says what is wrong."""
    match = re.fullmatch(r"\s*([a-zA-Z]+)\s+(\d{1,2}):(\d{2})\s*", text)
    day = match.group(1).lower()[:3] if match else ""
    if not match or (day not in WEEKDAYS and match.group(1).lower() != "daily"):
        raise ValueError('expected a day and a time, like "mon 09:00" or "daily 09:00"')
    hour, minute = int(match.group(2)), int(match.group(3))
    if hour > 23 or minute > 59:
        raise ValueError(f"{hour:02d}:{minute:02d} is not a time of day")
    return (None if day == "dai" else WEEKDAYS.index(day)), hour, minute


def _is_secret(field: str) -> bool:
    """Secrets are the SecretStr settings, whatever their names say (QWENBOT_CHUNK_TOKENS is not one)."""
    info = Settings.model_fields.get(field)
    return info is not None and "SecretStr" in str(info.annotation)


def file_values(env_file: str | Path | None) -> dict[str, str | None]:
    path = Path(env_file) if env_file is not None else None
    return dotenv_values(path) if path is not None and path.exists() and not path.is_dir() else {}


def _comparable(value: object) -> str:
    return os.path.abspath(value) if isinstance(value, Path) else str(value)


def _env_name(loc: tuple[object, ...]) -> str:
    field = str(loc[0]) if loc else "?"
    info = Settings.model_fields.get(field)
    if info is not None and isinstance(info.validation_alias, str):
        return info.validation_alias
    return f"QWENBOT_{field.upper()}"


def _ids(values: list[str], kind: str, problem: str) -> list[str]:
    """Slack ids: `kind` is the first letters allowed (channel C/G/D, user U/W); a name is refused."""
    for value in values:
        if not re.fullmatch(kind + r"[A-Z0-9]{6,}", value):
            raise ValueError(f"{value!r} {problem}")
    return values


def load_settings(env_file: str | Path | None = ".env", **overrides: Any) -> Settings:
    """Read settings once. A bad value raises SettingsError with one line naming the variable."""
    try:
        settings = Settings(_env_file=env_file, **overrides)  # type: ignore[call-arg]
    except ValidationError as exc:
        err = exc.errors()[0]
        field = str(err["loc"][0]) if err["loc"] else ""
        given = err.get("input")
        if field.endswith("_url") and isinstance(given, str):
            given = redact_url(given)  # a URL may carry user:password@ or an API key in its query
        shown = "" if _is_secret(field) else f" (got {given!r})"  # never echo a secret back
        message = err["msg"].removeprefix("Value error, ")
        raise SettingsError(f"{_env_name(err['loc'])}: {message}{shown}") from None
    except SourceError as exc:  # a value the source could not even parse
        raise SettingsError(str(exc)) from None
    path = Path(env_file) if env_file is not None else None
    settings._file = path if path is not None and path.exists() and not path.is_dir() else None
    settings._overridden = frozenset(overrides)
    return _anchor_paths(settings, overrides)


def _anchor_paths(settings: Settings, overrides: Mapping[str, Any]) -> Settings:
    """A relative path written in the settings file is relative to that file's folder, so `qwenbot
    --env-file /srv/qwenbot/.env` means the same from any folder. Paths from the environment, from the
    code, and the defaults stay relative to the current folder."""
    if settings.settings_file is None:
        return settings
    folder = settings.settings_file.parent
    in_file = {name.upper() for name in file_values(settings.settings_file)}
    in_file -= {name.upper() for name in os.environ}  # the environment wins over the file
    update = {}
    for field in Settings.model_fields:
        value = getattr(settings, field)
        if isinstance(value, Path) and not value.is_absolute() and field not in overrides:
            if _env_name((field,)).upper() in in_file:
                update[field] = folder / value
    return settings.model_copy(update=update) if update else settings

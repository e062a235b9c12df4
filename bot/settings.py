"""All configuration, read once (`.env`, then the environment) into one object that is passed down."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from pydantic_settings import SettingsError as SourceError

from bot.errors import ConfigError
from retrieval.config import DEFAULT_EMBEDDING_MODEL, IndexConfig

Provider = Literal["vllm", "sglang", "llamacpp", "ollama", "dashscope", "openai"]


class SettingsError(ConfigError):
    """A bad setting; `str()` is one line naming the variable and what it expects."""


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
    embedding_batch_size: int = Field(64, ge=1)
    chunk_tokens: int = Field(200, ge=32, le=512)
    chunk_overlap_tokens: int = Field(40, ge=0)
    dense_weight: float = Field(1.0, ge=0)
    lexical_weight: float = Field(1.0, ge=0)
    top_k: int = Field(6, ge=1, le=50)
    reindex_interval_minutes: float = Field(0, ge=0)  # 0 = off; >0 = the bot re-indexes docs_dir itself

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
    # best dense cosine below this: don't ask the model. 0.32 calibrated on docs_corpus/questions.jsonl with
    # all-MiniLM-L6-v2 (bench/calibrate_abstain.py): 4/15 unanswerable abstain, 2/92 answerable wrongly do.
    abstain_threshold: float = Field(0.32, ge=-1, le=1)

    # --- Slack ---
    slack_bot_token: SecretStr | None = Field(None, validation_alias="SLACK_BOT_TOKEN")
    slack_app_token: SecretStr | None = Field(None, validation_alias="SLACK_APP_TOKEN")
    slack_signing_secret: SecretStr | None = Field(None, validation_alias="SLACK_SIGNING_SECRET")
    slack_api_url: str = "https://slack.com/api/"
    # NoDecode: a comma-separated list in the environment, not JSON
    allowed_channels: Annotated[list[str], NoDecode] = Field(default_factory=list)  # empty: every channel the bot is in
    channel_scopes_file: Path | None = None
    follow_up_without_mention: bool = True
    answer_other_bots: bool = False
    rate_limit_per_minute: int = Field(6, ge=0)  # per user; 0 = off
    stale_source_days: int = Field(365, ge=1)
    state_db: Path = Path(".qwenbot/state.sqlite3")
    dedupe_ttl_hours: float = Field(24, gt=0)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("allowed_channels", mode="before")
    @classmethod
    def _split_channels(cls, value: object) -> object:
        if isinstance(value, str):
            return [c.strip() for c in value.split(",") if c.strip()]
        return value

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
            chunk_tokens=self.chunk_tokens,
            chunk_overlap_tokens=self.chunk_overlap_tokens,
            dense_weight=self.dense_weight,
            lexical_weight=self.lexical_weight,
        )


def _env_name(loc: tuple[object, ...]) -> str:
    field = str(loc[0]) if loc else "?"
    info = Settings.model_fields.get(field)
    if info is not None and isinstance(info.validation_alias, str):
        return info.validation_alias
    return f"QWENBOT_{field.upper()}"


def load_settings(env_file: str | Path | None = ".env", **overrides: Any) -> Settings:
    """Read settings once. A bad value raises SettingsError with one line naming the variable."""
    try:
        return Settings(_env_file=env_file, **overrides)  # type: ignore[call-arg]
    except ValidationError as exc:
        err = exc.errors()[0]
        name = _env_name(err["loc"])
        secret = any(word in name.lower() for word in ("token", "key", "secret"))
        shown = "" if secret else f" (got {err.get('input')!r})"  # never echo a secret back
        raise SettingsError(f"{name}: {err['msg']}{shown}") from None
    except SourceError as exc:  # a value the source could not even parse
        raise SettingsError(str(exc)) from None

"""Logging for `qwenbot run`: configured once, as text or as JSON lines (QWENBOT_LOG_FORMAT) for log
shippers, with the libraries' per-request chatter kept out; and the one line logged per question."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from bot.config import LogConfig, LogFormat

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
FIELDS = "qwenbot_fields"  # the LogRecord attribute holding a line's fields, as `extra={FIELDS: {...}}`
# One INFO line per HTTP request: httpx (the Chroma server's client), httpx2 (the openai SDK's, so the
# model endpoint): shown only at DEBUG.
CHATTY_LOGGERS = ("httpx", "httpx2")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, then the line's own fields as keys."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, FIELDS, None)
        if isinstance(fields, dict):
            out.update({k: v for k, v in fields.items() if k not in out})
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def configure(level: str, fmt: LogFormat) -> None:
    """The bot's logging: one stream handler on the root logger, in the configured format."""
    handler = logging.StreamHandler()
    # The level goes on the handler too: bm25s sets its own logger to DEBUG, and a logger's own level
    # (not the root's) decides what it passes on, so its DEBUG lines would show at INFO.
    handler.setLevel(level)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler])
    if logging.getLevelName(level) > logging.DEBUG:
        for name in CHATTY_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)


@dataclass(frozen=True)
class UserHasher:
    """Slack user ids in logs as a keyed hash: stable (the same person is the same hash, across
    restarts and replicas) but not reversible by hashing a workspace's member list, as the key is secret."""

    key: bytes

    @classmethod
    def from_config(cls, config: LogConfig) -> UserHasher:
        key = config.user_hash_key
        return cls(key.get_secret_value().encode() if key else b"")

    def __call__(self, user: str) -> str:
        return hmac.new(self.key, user.encode(), hashlib.sha256).hexdigest()[:16]


@dataclass(frozen=True)
class QuestionLog:
    """The line logged for each question: where, who (hashed), how it ended, what it cited, how long
    each part took (seconds) and the model's tokens, when known. Never the question's text."""

    event_id: str | None
    channel: str
    user: str  # UserHasher output, never the raw id
    mode: str  # bot.metrics.QUESTION_MODES
    cited: list[str]
    search_s: float | None = None
    first_token_s: float | None = None
    total_s: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    note: str | None = None  # refused: why; the model's error; error: the id the asker was shown

    def emit(self, logger: logging.Logger) -> None:
        fields = {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(self).items() if v is not None}
        logger.info("question %s", " ".join(f"{k}={_text(v)}" for k, v in fields.items()), extra={FIELDS: fields})


def _text(value: object) -> str:
    text = ",".join(map(str, value)) if isinstance(value, list) else str(value)
    return json.dumps(text, ensure_ascii=False) if not text or any(c.isspace() or c in '"=' for c in text) else text

"""bot/llm's exception tree (its root is the bot's, `bot.errors.QwenbotError`):

    QwenbotError
    ├── LLMError    the model gave no (complete) answer; what callers catch
    └── Retryable   a failure another try may get past; the client's retry loop consumes it, it never
                    leaves bot/llm (when no try is left, its `error` is raised instead)

A bad setting (no QWENBOT_LLM_BASE_URL, an unknown provider) is the bot's `ConfigError`.
"""

from __future__ import annotations

from typing import Literal

from bot.errors import QwenbotError

LLMErrorKind = Literal[
    "auth",  # 401 / 403: the key
    "model_not_served",
    "not_openai",  # a web page, or no OpenAI-compatible API at that URL
    "dns",
    "refused",
    "connect",  # any other failure to connect (TLS, reset, unreachable network)
    "timeout",
    "rate_limited",
    "server",  # 5xx
    "rejected",  # any other 4xx: the request itself
    "stream",  # the stream broke or ended early
    "malformed",
    "unexpected",
]


class LLMError(QwenbotError):
    """The model gave no (complete) answer. `str()` is one line, safe to show (no secrets, no request
    bodies): `problem`, then `fix` (what to check) when there is one. `kind` names the failure for
    metrics and tests. `after_output` is true when some answer text had already been yielded."""

    def __init__(
        self, problem: str, *, kind: LLMErrorKind = "unexpected", fix: str = "", after_output: bool = False
    ) -> None:
        super().__init__(f"{problem}: {fix}" if fix else problem)
        self.problem = problem
        self.kind: LLMErrorKind = kind
        self.fix = fix
        self.after_output = after_output


class Retryable(QwenbotError):
    """A failure another try may get past; `error` is what is reported when no try is left."""

    def __init__(self, error: LLMError, delay: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.delay = delay  # the server's Retry-After, when it gave one

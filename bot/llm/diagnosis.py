"""The one place a failed model call becomes a message: each SDK or transport failure, and each reply
that is no OpenAI-compatible API, is diagnosed into an `LLMError` whose one line says what went wrong
and what to check (`qwenbot doctor`, `qwenbot ask` and `/qwenbot status` all show it), or into a
`Retryable` when the server may recover.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import openai

from bot.llm.errors import LLMError, Retryable
from bot.text import short
from retrieval.retry_after import retry_after_seconds

_LISTED_MODELS = 10  # served models named in a "not served" error; the rest are counted
_BASE_URL_FIX = "point QWENBOT_LLM_BASE_URL at the server's OpenAI-compatible API root (it usually ends in /v1)"


class Diagnosis:
    """Diagnoses failures of calls to one endpoint. `where` is its `host:port` (never the URL's
    credentials or path); `has_key`: an API key is configured; `list_models` asks the server which
    models it serves (a 404 may mean the model is not one of them)."""

    def __init__(
        self,
        *,
        where: str,
        model: str,
        has_key: bool,
        connect_timeout: float,
        read_timeout: float,
        list_models: Callable[[], list[str]],
    ) -> None:
        self.where = where
        self.model = model
        self.has_key = has_key
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.list_models = list_models

    def diagnose(self, exc: BaseException, *, listing: bool = False) -> LLMError | Retryable:
        """An SDK or transport failure as a final LLMError, or a Retryable one (the server may recover).

        listing: the failed request was GET /models (a 404 there means a wrong URL, not a wrong model)."""
        if isinstance(exc, LLMError):
            return exc
        if isinstance(exc, openai.APIStatusError):
            return self._status_error(exc, listing)
        if isinstance(exc, openai.APITimeoutError):  # before APIConnectionError: it is one
            return Retryable(self._timeout_error(exc))
        if isinstance(exc, openai.APIConnectionError):
            return Retryable(self._connection_error(exc))
        if isinstance(exc, openai.APIError):  # an error event inside the stream
            return Retryable(LLMError(f"error in stream: {short(exc.message)}", kind="stream"))
        if isinstance(exc, ValueError):  # malformed JSON in the body or in an SSE event
            return Retryable(LLMError(f"malformed response ({type(exc).__name__})", kind="malformed"))
        return LLMError(f"unexpected error ({type(exc).__name__})")

    def _status_error(self, exc: openai.APIStatusError, listing: bool) -> LLMError | Retryable:
        status = exc.status_code
        if status in (401, 403) and not self.has_key:  # no key was sent: there was none to refuse
            return LLMError(
                f"the server needs an API key (HTTP {status}) and QWENBOT_LLM_API_KEY is not set",
                kind="auth",
                fix="set QWENBOT_LLM_API_KEY to the server's key",
            )
        if status in (401, 403):
            return LLMError(f"the server refused the key (HTTP {status})", kind="auth", fix="check QWENBOT_LLM_API_KEY")
        if status == 429:
            return Retryable(LLMError("rate limited (HTTP 429)", kind="rate_limited"), _retry_after(exc.response))
        if status >= 500:
            error = LLMError(f"server error (HTTP {status})", kind="server", fix="check the model server's log")
            return Retryable(error, _retry_after(exc.response))
        if status in (404, 405) and not _is_json(exc.response):  # a web server, or a path that is no API
            return self.not_openai(exc.response)
        if status == 404 and listing:
            return LLMError(
                f"no model list at {self.where} (GET {exc.response.request.url.path}: HTTP 404)",
                kind="not_openai",
                fix=_BASE_URL_FIX,
            )
        if status == 404:  # vLLM, SGLang, Ollama and OpenAI answer 404 for a model they do not serve
            try:
                served = self.list_models()
            except LLMError:
                served = None
            if served is not None and self.model not in served:
                return self.not_served(served)
        return LLMError(f"request rejected (HTTP {status}): {short(exc.message)}", kind="rejected")

    def not_openai(self, response: Any) -> LLMError:
        """A reply (an HTML page, say) that shows no OpenAI-compatible API answers at this URL."""
        request = f"{response.request.method} {response.request.url.path}"
        return LLMError(
            f"{self.where} is not an OpenAI-compatible API: it answered {request} with {_describe(response)}",
            kind="not_openai",
            fix=_BASE_URL_FIX,
        )

    def _timeout_error(self, exc: BaseException) -> LLMError:
        # httpx and httpx2 (whichever the openai SDK uses) and httpcore all name it ConnectTimeout
        if any(type(e).__name__ == "ConnectTimeout" for e in _causes(exc)):
            return LLMError(
                f"timed out connecting to {self.where} (QWENBOT_LLM_CONNECT_TIMEOUT is {self.connect_timeout:g}s)",
                kind="timeout",
                fix="check that the host is up and that its port is open to this machine",
            )
        return LLMError(
            f"timed out: no reply from {self.where} within {self.read_timeout:g}s (QWENBOT_LLM_READ_TIMEOUT)",
            kind="timeout",
            fix="the server may be overloaded or still loading the model",
        )

    def _connection_error(self, exc: BaseException) -> LLMError:
        causes = list(_causes(exc))
        if any(isinstance(e, socket.gaierror) for e in causes):
            host = self.where.rsplit(":", 1)[0]
            return LLMError(
                f"connection failed: cannot resolve host {host}",
                kind="dns",
                fix="check the host name in QWENBOT_LLM_BASE_URL (and this machine's DNS)",
            )
        if any(isinstance(e, ConnectionRefusedError) for e in causes):
            return LLMError(
                f"connection failed: nothing listens on {self.where} (connection refused)",
                kind="refused",
                fix="start the model server, or fix the port in QWENBOT_LLM_BASE_URL",
            )
        return LLMError(
            f"connection failed to {self.where} ({type(causes[-1]).__name__})",
            kind="connect",
            fix="check QWENBOT_LLM_BASE_URL and the network between here and the server",
        )

    def not_served(self, served: Sequence[str]) -> LLMError:
        """The configured model is missing from the server's list: name what it serves instead."""
        listed = ", ".join(served[:_LISTED_MODELS]) or "none"
        if len(served) > _LISTED_MODELS:
            listed += f" and {len(served) - _LISTED_MODELS} more"
        return LLMError(
            f"model {self.model!r} is not served at {self.where} (served: {listed})",
            kind="model_not_served",
            fix="set QWENBOT_LLM_MODEL to a served model id",
        )


def _retry_after(response: Any) -> float | None:
    if response is None:
        return None
    ms = response.headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    return retry_after_seconds(response.headers.get("retry-after"))


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and what it was raised from, outermost first: the transport's reason sits at the bottom."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _is_json(response: Any) -> bool:
    return "json" in response.headers.get("content-type", "")


def _describe(response: Any) -> str:
    """What a reply that is not the expected JSON was, from its headers alone (a stream is not read)."""
    content_type = response.headers.get("content-type", "").split(";")[0].strip()
    what = "an HTML page" if "html" in content_type else f"a {content_type or 'non-JSON'} reply"
    return f"{what} (HTTP {response.status_code})"

"""OpenAI-compatible chat client for Qwen: streaming, reasoning split-off, bounded retries.

Every call is bounded by `llm_total_timeout`: retries, Retry-After waits and slow streams all count
against one deadline, and the caller never waits past it (the HTTP work runs in a worker thread that
the caller stops waiting for). When the caller stops (the deadline, or it gave up on the answer), the
connection is shut, so the worker and the server's slot are freed even if the server keeps sending
keep-alive comments. Text that was already streamed is never repeated by a retry.

Every failure is diagnosed in one place (`LLMClient._diagnose`) into an `LLMError` whose one line says
what went wrong and what to check; `qwenbot doctor`, `qwenbot ask` and `/qwenbot status` all show it.
"""

from __future__ import annotations

import email.utils
import logging
import queue
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import httpx
import openai
from openai import OpenAI, Timeout

from bot.errors import ConfigError, QwenbotError
from bot.llm.profiles import QWEN_SAMPLING, Profile, Sampling, get_profile
from bot.settings import Settings
from bot.text import short

log = logging.getLogger(__name__)

_BACKOFF_START = 0.5  # seconds before the first retry of a 5xx / timeout / refused connection
_BACKOFF_MAX = 8.0
_LISTED_MODELS = 10  # served models named in a "not served" error; the rest are counted
_BASE_URL_FIX = "point QWENBOT_LLM_BASE_URL at the server's OpenAI-compatible API root (it usually ends in /v1)"


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class ReasoningDelta:
    text: str


@dataclass(frozen=True)
class UsageReport:
    usage: Usage


@dataclass(frozen=True)
class Finished:
    """Why the model stopped (the server's finish_reason): "stop", or "length" when the answer reached
    the output token limit (QWENBOT_LLM_MAX_TOKENS) and ends mid-sentence."""

    reason: str


LLMEvent = TextDelta | ReasoningDelta | UsageReport | Finished


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


class _Retryable(Exception):
    """A failure another try may get past; `error` is what is reported when no try is left."""

    def __init__(self, error: LLMError, delay: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.delay = delay  # the server's Retry-After, when it gave one


class ThinkSplitter:
    """Splits streamed content into answer and reasoning at `<think>` / `</think>`.

    Tags may arrive split across chunks, so a suffix that could start a tag is held back until the
    next chunk decides it. With `expect_thinking`, the content may also begin inside a think block
    whose `<think>` the chat template already put in the prompt (Qwen3 thinking models): such content
    is held until a `</think>` shows it was reasoning, or the stream ends, or `decide_answer()` is
    called because the server sends reasoning in its own field.
    """

    OPEN, CLOSE = "<think>", "</think>"

    def __init__(self, expect_thinking: bool = False) -> None:
        self._inside = False
        self._pending = ""
        self._undecided = expect_thinking

    def feed(self, text: str) -> tuple[str, str]:
        if self._undecided:
            return self._feed_undecided(text)
        buf = self._pending + text
        answer: list[str] = []
        reasoning: list[str] = []
        while True:
            out = reasoning if self._inside else answer
            tags = (self.CLOSE,) if self._inside else (self.OPEN, self.CLOSE)
            found = [(buf.find(t), t) for t in tags if t in buf]
            if found:
                at, tag = min(found)
                out.append(buf[:at])
                buf = buf[at + len(tag) :]
                if tag == self.OPEN or self._inside:
                    self._inside = not self._inside
                continue  # a stray CLOSE outside a block is dropped
            keep = _partial_tag_suffix(buf, tags)
            out.append(buf[: len(buf) - keep])
            self._pending = buf[len(buf) - keep :]
            return "".join(answer), "".join(reasoning)

    def _feed_undecided(self, text: str) -> tuple[str, str]:
        buf, self._pending = self._pending + text, ""
        head = buf.lstrip()
        if head.startswith(self.OPEN):  # an explicit block: the ordinary rules apply
            self._undecided = False
            return self.feed(buf)
        if self.CLOSE in buf:
            self._undecided = False
            at = buf.index(self.CLOSE)
            answer, reasoning = self.feed(buf[at + len(self.CLOSE) :])
            return answer, buf[:at] + reasoning
        self._pending = buf
        return "", ""

    def decide_answer(self) -> tuple[str, str]:
        """The server separates reasoning itself: what was held back is answer."""
        if not self._undecided:
            return "", ""
        self._undecided = False
        held, self._pending = self._pending, ""
        return self.feed(held)

    def flush(self) -> tuple[str, str]:
        if self._undecided:  # no </think> came: it was all answer
            return self.decide_answer()[0] + self.flush()[0], ""
        rest, self._pending = self._pending, ""
        return ("", rest) if self._inside else (rest, "")


def _partial_tag_suffix(buf: str, tags: tuple[str, ...]) -> int:
    for k in range(min(len(buf), max(map(len, tags)) - 1), 0, -1):
        if any(t.startswith(buf[-k:]) for t in tags):
            return k
    return 0


def _retry_after(response: Any) -> float | None:
    if response is None:
        return None
    ms = response.headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:  # the HTTP-date form
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


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


class LLMClient:
    """One OpenAI-compatible endpoint, spoken to the way its provider profile says."""

    def __init__(self, settings: Settings) -> None:
        if not settings.llm_base_url:
            raise ConfigError("QWENBOT_LLM_BASE_URL is not set")
        self.settings = settings
        self.profile: Profile = get_profile(settings.llm_provider)
        self.model = settings.llm_model
        self.where = _host_port(settings.llm_base_url)  # for messages: never the URL's credentials or path
        self._api_key = settings.llm_api_key.get_secret_value()
        self._client = OpenAI(
            base_url=settings.llm_base_url,
            # Local servers take any key; the SDK insists on one.
            api_key=self._api_key or "EMPTY",
            timeout=Timeout(settings.llm_read_timeout, connect=settings.llm_connect_timeout),
            max_retries=0,  # retries are ours: bounded by the total budget and Retry-After aware
        )

    # --- request building ---

    def sampling(self, thinking: bool) -> Sampling:
        base = QWEN_SAMPLING[thinking]
        s = self.settings
        return Sampling(
            temperature=base.temperature if s.llm_temperature is None else s.llm_temperature,
            top_p=base.top_p if s.llm_top_p is None else s.llm_top_p,
            top_k=base.top_k if s.llm_top_k is None else s.llm_top_k,
            min_p=base.min_p,
        )

    def request(
        self,
        messages: list[dict[str, str]],
        *,
        stream: bool = True,
        max_tokens: int | None = None,
        thinking: bool | None = None,
    ) -> dict[str, Any]:
        """Keyword arguments for `chat.completions.create`, exactly as this profile puts them on the wire."""
        thinking = self.settings.llm_thinking if thinking is None else thinking
        sampling = self.sampling(thinking)
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            self.profile.max_tokens_field: max_tokens or self.settings.llm_max_tokens,
            "stream": stream,
        }
        if stream and self.profile.stream_usage:
            kwargs["stream_options"] = {"include_usage": True}
        extra: dict[str, Any] = {name: getattr(sampling, name) for name in self.profile.extra_sampling}
        extra.update(self.profile.thinking_fields(thinking))
        if extra:
            kwargs["extra_body"] = extra
        return kwargs

    # --- calls ---

    def stream(self, messages: list[dict[str, str]]) -> Iterator[LLMEvent]:
        """Stream one answer: text deltas, reasoning deltas, usage when the server reports it, and last
        why the model stopped (Finished).

        Raises LLMError when no complete answer came within the retry policy and the time budget.
        """
        deadline = time.monotonic() + self.settings.llm_total_timeout
        kwargs = self.request(messages)
        attempt = 0
        while True:
            state = _StreamState()
            try:
                yield from self._stream_once(kwargs, deadline, state)
                return
            except LLMError as exc:
                raise self._final(exc, after_output=state.text_out) from None
            except _Retryable as exc:
                if state.text_out:
                    raise self._final(exc, "stream broke after partial output", after_output=True) from None
                attempt += 1
                delay = exc.delay if exc.delay is not None else min(_BACKOFF_MAX, _BACKOFF_START * 2 ** (attempt - 1))
                remaining = deadline - time.monotonic()
                if attempt > self.settings.llm_retries or delay >= remaining:
                    tries = f"{attempt} attempt{'s' if attempt > 1 else ''}"
                    raise self._final(exc, f"model unavailable after {tries}") from None
                log.warning("LLM call failed (%s); retry %d in %.1fs", self._redact(exc.error.problem), attempt, delay)
                time.sleep(delay)

    def _redact(self, message: str) -> str:
        """Error texts may quote what the server echoed back: never let the API key through."""
        return message.replace(self._api_key, "***") if self._api_key else message

    def _final(self, failure: LLMError | _Retryable, context: str = "", *, after_output: bool = False) -> LLMError:
        """The error callers get: `context` first, the API key redacted, the diagnosis kept."""
        error = failure.error if isinstance(failure, _Retryable) else failure
        problem = f"{context}: {error.problem}" if context else error.problem
        return LLMError(self._redact(problem), kind=error.kind, fix=error.fix, after_output=after_output)

    # --- diagnosis: the one place a failure becomes a message ---

    def _diagnose(self, exc: BaseException, *, listing: bool = False) -> LLMError | _Retryable:
        """An SDK or transport failure as a final LLMError, or a _Retryable one (the server may recover).

        listing: the failed request was GET /models (a 404 there means a wrong URL, not a wrong model)."""
        if isinstance(exc, LLMError):
            return exc
        if isinstance(exc, openai.APIStatusError):
            return self._status_error(exc, listing)
        if isinstance(exc, openai.APITimeoutError):  # before APIConnectionError: it is one
            return _Retryable(self._timeout_error(exc))
        if isinstance(exc, openai.APIConnectionError):
            return _Retryable(self._connection_error(exc))
        if isinstance(exc, openai.APIError):  # an error event inside the stream
            return _Retryable(LLMError(f"error in stream: {short(exc.message)}", kind="stream"))
        if isinstance(exc, ValueError):  # malformed JSON in the body or in an SSE event
            return _Retryable(LLMError(f"malformed response ({type(exc).__name__})", kind="malformed"))
        return LLMError(f"unexpected error ({type(exc).__name__})")

    def _status_error(self, exc: openai.APIStatusError, listing: bool) -> LLMError | _Retryable:
        status = exc.status_code
        if status in (401, 403) and not self._api_key:  # no key was sent: there was none to refuse
            return LLMError(
                f"the server needs an API key (HTTP {status}) and QWENBOT_LLM_API_KEY is not set",
                kind="auth",
                fix="set QWENBOT_LLM_API_KEY to the server's key",
            )
        if status in (401, 403):
            return LLMError(f"the server refused the key (HTTP {status})", kind="auth", fix="check QWENBOT_LLM_API_KEY")
        if status == 429:
            return _Retryable(LLMError("rate limited (HTTP 429)", kind="rate_limited"), _retry_after(exc.response))
        if status >= 500:
            error = LLMError(f"server error (HTTP {status})", kind="server", fix="check the model server's log")
            return _Retryable(error, _retry_after(exc.response))
        if status in (404, 405) and not _is_json(exc.response):  # a web server, or a path that is no API
            return self._not_openai(exc.response)
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

    def _not_openai(self, response: Any) -> LLMError:
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
                f"timed out connecting to {self.where} "
                f"(QWENBOT_LLM_CONNECT_TIMEOUT is {self.settings.llm_connect_timeout:g}s)",
                kind="timeout",
                fix="check that the host is up and that its port is open to this machine",
            )
        return LLMError(
            f"timed out: no reply from {self.where} within {self.settings.llm_read_timeout:g}s "
            "(QWENBOT_LLM_READ_TIMEOUT)",
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

    def _check_stream(self, response: Any) -> None:
        """A 200 that is no event stream (a web UI's page, say) is not an OpenAI-compatible server."""
        content_type = response.headers.get("content-type", "")
        if "event-stream" not in content_type and "json" not in content_type:
            raise self._not_openai(response)

    def _stream_once(self, kwargs: dict[str, Any], deadline: float, state: _StreamState) -> Iterator[LLMEvent]:
        splitter = ThinkSplitter(expect_thinking=self.settings.llm_thinking)
        finished: str | None = None
        for chunk in self._chunks(kwargs, deadline):
            if chunk.usage is not None:
                yield UsageReport(Usage(chunk.usage.prompt_tokens or 0, chunk.usage.completion_tokens or 0))
            for choice in chunk.choices or ():  # the usage chunk has no choices
                delta = choice.delta
                # vLLM / SGLang / llama.cpp put parsed reasoning in reasoning_content, Ollama in reasoning.
                reasoning = getattr(delta, "reasoning_content", None) or getattr(delta, "reasoning", None)
                if delta is not None and isinstance(reasoning, str) and reasoning:
                    yield from state.emit(*splitter.decide_answer())
                    yield ReasoningDelta(reasoning)
                if delta is not None and delta.content:
                    yield from state.emit(*splitter.feed(delta.content))
                if choice.finish_reason:
                    finished = choice.finish_reason
        yield from state.emit(*splitter.flush())
        if not finished:
            raise _Retryable(LLMError("stream ended before the answer finished", kind="stream"))
        yield Finished(finished)

    def _chunks(self, kwargs: dict[str, Any], deadline: float) -> Iterator[Any]:
        """The raw chunks of one streamed request, given up on at the deadline."""
        items: queue.Queue[tuple[str, Any]] = queue.Queue()
        stop = threading.Event()
        responses: list[httpx.Response] = []  # the open response, for `abort` to shut
        remaining = deadline - time.monotonic()
        timeout = Timeout(
            min(self.settings.llm_read_timeout, remaining),
            connect=min(self.settings.llm_connect_timeout, remaining),
        )

        def abort() -> None:
            # A read timeout never fires while the server sends keep-alive comments, and those never
            # reach the loop below: shutting the socket is what wakes the worker's blocked read.
            stop.set()
            for response in responses:
                _shut(response)

        def work() -> None:
            outcome: tuple[str, Any] = ("end", None)
            try:
                with self._client.chat.completions.create(**kwargs, timeout=timeout) as stream:
                    responses.append(stream.response)
                    self._check_stream(stream.response)
                    for chunk in stream:
                        if stop.is_set():
                            break
                        items.put(("chunk", chunk))
            except BaseException as exc:  # handed to the caller's thread
                outcome = ("error", exc)
            # closed now (its connection may be back in the pool): no longer abort's to shut
            responses.clear()
            deadline_timer.cancel()
            items.put(outcome)

        expired = threading.Event()

        def on_deadline() -> None:
            expired.set()
            abort()

        # the deadline holds in the worker too, even if the caller stops reading without closing us
        deadline_timer = threading.Timer(max(0.0, remaining), on_deadline)
        deadline_timer.daemon = True
        deadline_timer.start()
        threading.Thread(target=work, name="llm-stream", daemon=True).start()
        try:
            while True:
                try:
                    kind, item = items.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    raise self._past_deadline() from None
                if kind == "end":
                    return
                if kind == "error":
                    # the deadline timer shuts the socket, and the worker may report that broken stream
                    # before this wait times out: it is still the deadline, not a network failure
                    raise (self._past_deadline() if expired.is_set() else self._diagnose(item)) from None
                yield item
        finally:
            abort()

    def _past_deadline(self) -> LLMError:
        return LLMError(
            f"no complete answer within {self.settings.llm_total_timeout:g}s (QWENBOT_LLM_TOTAL_TIMEOUT)",
            kind="timeout",
        )

    def complete(self, messages: list[dict[str, str]], *, max_tokens: int, timeout: float) -> str:
        """One short answer with thinking off: one try, no retries, given up on after `timeout` seconds.

        For small side tasks (rewriting a follow-up question) that must never hold up the answer.
        Streamed like every other call, so the deadline is checked between chunks. Raises LLMError.
        """
        kwargs = self.request(messages, max_tokens=max_tokens, thinking=False)
        splitter = ThinkSplitter()
        parts: list[str] = []
        deadline = time.monotonic() + timeout
        try:
            for chunk in self._chunks(kwargs, deadline):
                for choice in chunk.choices or ():
                    if choice.delta is not None and choice.delta.content:
                        parts.append(splitter.feed(choice.delta.content)[0])
        except (LLMError, _Retryable) as exc:
            if time.monotonic() >= deadline:
                raise LLMError(f"no answer within {timeout:g}s", kind="timeout") from None
            raise self._final(exc) from None
        return "".join(parts) + splitter.flush()[0]

    def ping(self, thinking: bool | None = None) -> str:
        """Ask for one token, the profile's thinking switch on the wire; one try, no retries.

        Streamed, because some servers (DashScope) refuse thinking on without streaming.
        """
        kwargs = self.request([{"role": "user", "content": "Say OK."}], max_tokens=1, thinking=thinking)
        try:
            with self._client.chat.completions.create(**kwargs) as stream:
                self._check_stream(stream.response)
                return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        except Exception as exc:
            raise self._final(self._diagnose(exc)) from None

    def list_models(self) -> list[str]:
        """The model ids the server lists (GET /models). One try; LLMError says why there is no list."""
        try:
            response = self._client.models.with_raw_response.list().http_response
        except Exception as exc:
            raise self._final(self._diagnose(exc, listing=True)) from None
        try:
            return [str(model["id"]) for model in response.json()["data"]]
        except (ValueError, KeyError, TypeError):  # not JSON, or JSON without an OpenAI model list
            raise self._final(self._not_openai(response)) from None

    def served_models(self) -> list[str]:
        """The server's models; LLMError when it can't list them or the configured model is not among them."""
        served = self.list_models()
        if self.model not in served:
            raise self.not_served(served)
        return served


class _StreamState:
    """Tracks whether answer text went out, and strips the whitespace models put after `</think>`."""

    def __init__(self) -> None:
        self.text_out = False

    def emit(self, answer: str, reasoning: str) -> Iterator[LLMEvent]:
        if reasoning:
            yield ReasoningDelta(reasoning)
        if not self.text_out:
            answer = answer.lstrip()
        if answer:
            self.text_out = True
            yield TextDelta(answer)


def _shut(response: httpx.Response) -> None:
    """Ends a response another thread may be blocked reading: shutting the socket wakes that read
    (closing it would not), and the reading thread then closes the response itself."""
    network_stream = response.extensions.get("network_stream")
    sock = network_stream.get_extra_info("socket") if network_stream is not None else None
    if isinstance(sock, socket.socket):
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:  # already closed
            pass


def _host_port(url: str) -> str:
    """`host:port` of a URL (the scheme's default port when none is given), for messages."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or "?"
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:  # a port that is no number: httpx reports it when connecting
        return host
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def build_client(settings: Settings) -> LLMClient | None:
    """The configured client, or None when no endpoint is set (answers are then extractive)."""
    return LLMClient(settings) if settings.llm_base_url else None

"""OpenAI-compatible chat client for Qwen (the transport): requests as the provider profile puts them on
the wire, streaming, bounded retries and timeouts.

Every call is bounded by `llm_total_timeout`: retries, Retry-After waits and slow streams all count
against one deadline, and the caller never waits past it (the HTTP work runs in a worker thread that
the caller stops waiting for). When the caller stops (the deadline, or it gave up on the answer), the
connection is shut, so the worker and the server's slot are freed even if the server keeps sending
keep-alive comments. Text that was already streamed is never repeated by a retry.

The stream's records are in bot/llm/events.py, the errors in bot/llm/errors.py, the `<think>` filter in
bot/llm/reasoning.py; every failure is diagnosed in one place, bot/llm/diagnosis.py, into an `LLMError`
whose one line says what went wrong and what to check.
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
from openai import OpenAI, Timeout

from bot.config import LLMConfig
from bot.errors import ConfigError
from bot.llm.diagnosis import Diagnosis
from bot.llm.errors import LLMError, Retryable
from bot.llm.events import Finished, LLMEvent, ReasoningDelta, TextDelta, Usage, UsageReport
from bot.llm.profiles import QWEN_SAMPLING, Profile, Sampling, get_profile
from bot.llm.reasoning import ThinkSplitter

log = logging.getLogger(__name__)

_BACKOFF_START = 0.5  # seconds before the first retry of a 5xx / timeout / refused connection
_BACKOFF_MAX = 8.0


class LLMClient:
    """One OpenAI-compatible endpoint, spoken to the way its provider profile says."""

    def __init__(self, config: LLMConfig) -> None:
        if not config.llm_base_url:
            raise ConfigError("QWENBOT_LLM_BASE_URL is not set")
        self.config = config
        self.profile: Profile = get_profile(config.llm_provider)
        self.model = config.llm_model
        self.where = _host_port(config.llm_base_url)  # for messages: never the URL's credentials or path
        self._api_key = config.llm_api_key.get_secret_value()
        self._client = OpenAI(
            base_url=config.llm_base_url,
            # Local servers take any key; the SDK insists on one.
            api_key=self._api_key or "EMPTY",
            timeout=Timeout(config.llm_read_timeout, connect=config.llm_connect_timeout),
            max_retries=0,  # retries are ours: bounded by the total budget and Retry-After aware
        )
        self._diagnosis = Diagnosis(
            where=self.where,
            model=self.model,
            has_key=bool(self._api_key),
            connect_timeout=config.llm_connect_timeout,
            read_timeout=config.llm_read_timeout,
            list_models=self.list_models,
        )

    # --- request building ---

    def sampling(self, thinking: bool) -> Sampling:
        base = QWEN_SAMPLING[thinking]
        s = self.config
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
        thinking = self.config.llm_thinking if thinking is None else thinking
        sampling = self.sampling(thinking)
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            self.profile.max_tokens_field: max_tokens or self.config.llm_max_tokens,
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
        deadline = time.monotonic() + self.config.llm_total_timeout
        kwargs = self.request(messages)
        attempt = 0
        while True:
            state = _StreamState()
            try:
                yield from self._stream_once(kwargs, deadline, state)
                return
            except LLMError as exc:
                raise self._final(exc, after_output=state.text_out) from None
            except Retryable as exc:
                if state.text_out:
                    raise self._final(exc, "stream broke after partial output", after_output=True) from None
                attempt += 1
                delay = exc.delay if exc.delay is not None else min(_BACKOFF_MAX, _BACKOFF_START * 2 ** (attempt - 1))
                remaining = deadline - time.monotonic()
                if attempt > self.config.llm_retries or delay >= remaining:
                    tries = f"{attempt} attempt{'s' if attempt > 1 else ''}"
                    raise self._final(exc, f"model unavailable after {tries}") from None
                log.warning("LLM call failed (%s); retry %d in %.1fs", self._redact(exc.error.problem), attempt, delay)
                time.sleep(delay)

    def _redact(self, message: str) -> str:
        """Error texts may quote what the server echoed back: never let the API key through."""
        return message.replace(self._api_key, "***") if self._api_key else message

    def _final(self, failure: LLMError | Retryable, context: str = "", *, after_output: bool = False) -> LLMError:
        """The error callers get: `context` first, the API key redacted, the diagnosis kept."""
        error = failure.error if isinstance(failure, Retryable) else failure
        problem = f"{context}: {error.problem}" if context else error.problem
        return LLMError(self._redact(problem), kind=error.kind, fix=error.fix, after_output=after_output)

    def not_served(self, served: Sequence[str]) -> LLMError:
        """The configured model is missing from the server's list: name what it serves instead."""
        return self._diagnosis.not_served(served)

    def _check_stream(self, response: Any) -> None:
        """A 200 that is no event stream (a web UI's page, say) is not an OpenAI-compatible server."""
        content_type = response.headers.get("content-type", "")
        if "event-stream" not in content_type and "json" not in content_type:
            raise self._diagnosis.not_openai(response)

    def _stream_once(self, kwargs: dict[str, Any], deadline: float, state: _StreamState) -> Iterator[LLMEvent]:
        splitter = ThinkSplitter(expect_thinking=self.config.llm_thinking)
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
            raise Retryable(LLMError("stream ended before the answer finished", kind="stream"))
        yield Finished(finished)

    def _chunks(self, kwargs: dict[str, Any], deadline: float) -> Iterator[Any]:
        """The raw chunks of one streamed request, given up on at the deadline."""
        items: queue.Queue[tuple[str, Any]] = queue.Queue()
        stop = threading.Event()
        responses: list[httpx.Response] = []  # the open response, for `abort` to shut
        remaining = deadline - time.monotonic()
        timeout = self._timeout(remaining)

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
                    raise (self._past_deadline() if expired.is_set() else self._diagnosis.diagnose(item)) from None
                yield item
        finally:
            abort()

    def _timeout(self, remaining: float) -> Timeout:
        """The configured connect and read timeouts, cut to what is left of the call's budget."""
        return Timeout(
            min(self.config.llm_read_timeout, remaining),
            connect=min(self.config.llm_connect_timeout, remaining),
        )

    def _past_deadline(self) -> LLMError:
        return LLMError(
            f"no complete answer within {self.config.llm_total_timeout:g}s (QWENBOT_LLM_TOTAL_TIMEOUT)",
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
        except (LLMError, Retryable) as exc:
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
            raise self._final(self._diagnosis.diagnose(exc)) from None

    def list_models(self) -> list[str]:
        """The model ids the server lists (GET /models). One try; LLMError says why there is no list."""
        try:
            response = self._client.models.with_raw_response.list().http_response
        except Exception as exc:
            raise self._final(self._diagnosis.diagnose(exc, listing=True)) from None
        try:
            return [str(model["id"]) for model in response.json()["data"]]
        except (ValueError, KeyError, TypeError):  # not JSON, or JSON without an OpenAI model list
            raise self._final(self._diagnosis.not_openai(response)) from None

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


def build_client(config: LLMConfig) -> LLMClient | None:
    """The configured client, or None when no endpoint is set (answers are then extractive)."""
    return LLMClient(config) if config.llm_base_url else None

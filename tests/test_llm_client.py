"""The OpenAI-compatible client against a scripted server over real HTTP."""

from __future__ import annotations

import logging
import time

import pytest
from support.fake_openai import FakeOpenAI, answer, closed_port_url, error, malformed_json, slow
from support.llm import MESSAGES, make_client

from bot.llm.client import LLMClient, build_client
from bot.llm.errors import LLMError
from bot.llm.events import Finished, ReasoningDelta, TextDelta, Usage, UsageReport
from bot.llm.reasoning import ThinkSplitter
from bot.settings import load_settings


def collect(client: LLMClient) -> tuple[str, str, list[Usage]]:
    text, reasoning, usage = [], [], []
    for event in client.stream(MESSAGES):
        if isinstance(event, TextDelta):
            text.append(event.text)
        elif isinstance(event, ReasoningDelta):
            reasoning.append(event.text)
        elif isinstance(event, UsageReport):
            usage.append(event.usage)
    return "".join(text), "".join(reasoning), usage


STREAM_USAGE = {"stream": True, "stream_options": {"include_usage": True}}
OFF = {"temperature": 0.7, "top_p": 0.8}
ON = {"temperature": 0.6, "top_p": 0.95}


@pytest.mark.parametrize(
    ("provider", "thinking", "expected"),
    [
        (
            "vllm",
            False,
            {
                **OFF,
                "max_tokens": 1024,
                **STREAM_USAGE,
                "top_k": 20,
                "min_p": 0.0,
                "chat_template_kwargs": {"enable_thinking": False},
            },
        ),
        (
            "vllm",
            True,
            {
                **ON,
                "max_tokens": 1024,
                **STREAM_USAGE,
                "top_k": 20,
                "min_p": 0.0,
                "chat_template_kwargs": {"enable_thinking": True},
            },
        ),
        (
            "sglang",
            False,
            {
                **OFF,
                "max_tokens": 1024,
                **STREAM_USAGE,
                "top_k": 20,
                "min_p": 0.0,
                "chat_template_kwargs": {"enable_thinking": False},
            },
        ),
        (
            "llamacpp",
            True,
            {
                **ON,
                "max_tokens": 1024,
                **STREAM_USAGE,
                "top_k": 20,
                "min_p": 0.0,
                "chat_template_kwargs": {"enable_thinking": True},
            },
        ),
        ("dashscope", False, {**OFF, "max_tokens": 1024, **STREAM_USAGE, "top_k": 20, "enable_thinking": False}),
        ("dashscope", True, {**ON, "max_tokens": 1024, **STREAM_USAGE, "top_k": 20, "enable_thinking": True}),
        ("ollama", False, {**OFF, "max_tokens": 1024, **STREAM_USAGE, "reasoning_effort": "none"}),
        ("ollama", True, {**ON, "max_tokens": 1024, **STREAM_USAGE}),
        ("openai", False, {**OFF, "max_completion_tokens": 1024, **STREAM_USAGE}),
        ("openai", True, {**ON, "max_completion_tokens": 1024, **STREAM_USAGE}),
    ],
)
def test_exact_request_body_per_profile(provider: str, thinking: bool, expected: dict) -> None:
    with FakeOpenAI() as server:
        server.push(answer("ok"))
        client = make_client(server.url, llm_provider=provider, llm_thinking=thinking)
        assert collect(client)[0] == "ok"
        assert server.bodies == [{"model": "Qwen/Qwen3-8B", "messages": MESSAGES, **expected}]


def test_sampling_settings_override_model_card_defaults() -> None:
    with FakeOpenAI() as server:
        server.push(answer("ok"))
        client = make_client(server.url, llm_temperature=0.1, llm_top_p=0.5, llm_top_k=5, llm_max_tokens=64)
        collect(client)
        body = server.bodies[0]
        assert (body["temperature"], body["top_p"], body["top_k"], body["max_tokens"]) == (0.1, 0.5, 5, 64)


def test_streamed_answer_and_usage_chunk_with_empty_choices() -> None:
    with FakeOpenAI() as server:
        server.push(answer(["The ", "answer ", "is 4."], usage=(120, 9)))
        text, reasoning, usage = collect(make_client(server.url))
    assert (text, reasoning, usage) == ("The answer is 4.", "", [Usage(120, 9)])


@pytest.mark.parametrize("reason", ["stop", "length"])
def test_why_the_model_stopped_comes_last(reason: str) -> None:
    with FakeOpenAI() as server:
        server.push(answer(["Full-time employees get", " 27"], finish=reason))
        events = list(make_client(server.url).stream(MESSAGES))
    assert events[-1] == Finished(reason)  # "length": cut at QWENBOT_LLM_MAX_TOKENS, mid-answer
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Full-time employees get", " 27"]


def test_usage_inside_the_finishing_chunk_is_recorded() -> None:
    with FakeOpenAI() as server:
        server.push(answer(["a", "b"], usage=(5, 2), usage_in_last_choice=True))
        assert collect(make_client(server.url)) == ("ab", "", [Usage(5, 2)])


def test_inline_think_split_across_chunks_never_reaches_the_answer() -> None:
    pieces = ["<th", "ink>The user wants ", "a number.</th", "ink>\n\nIt", " is 4 [1]", "."]
    with FakeOpenAI() as server:
        server.push(answer(pieces))
        text, reasoning, _ = collect(make_client(server.url, llm_thinking=True))
    assert text == "It is 4 [1]."
    assert reasoning == "The user wants a number."


def test_reply_opening_inside_a_think_block_keeps_the_reasoning_out() -> None:
    pieces = ["The user asks", " about x.\n</th", "ink>\n\nAnswer", " [1]."]
    with FakeOpenAI() as server:
        server.push(answer(pieces))
        assert collect(make_client(server.url, llm_thinking=True))[:2] == ("Answer [1].", "The user asks about x.\n")


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_reasoning_fields_are_kept_out_of_the_answer(field: str) -> None:
    with FakeOpenAI() as server:
        server.push(answer(["Four."], reasoning=["2+2 ", "is 4"], reasoning_field=field))
        assert collect(make_client(server.url, llm_thinking=True))[:2] == ("Four.", "2+2 is 4")


@pytest.mark.parametrize(
    ("full", "expect_thinking", "answer_text", "reasoning_text"),
    [
        ("<think>a<b</think>\n\nx < y </think> z<think>c</think>!", False, "\n\nx < y  z!", "a<bc"),
        ("<think>a<b</think>\n\nx < y </think> z<think>c</think>!", True, "\n\nx < y  z!", "a<bc"),
        # Thinking templates open the block in the prompt: the reply starts inside it.
        ("plan: a<b\n</think>\n\nx <think>c</think>!", True, "\n\nx !", "plan: a<b\nc"),
        ("no reasoning at all <b>", True, "no reasoning at all <b>", ""),
    ],
)
def test_think_splitter_is_independent_of_chunk_boundaries(
    full: str, expect_thinking: bool, answer_text: str, reasoning_text: str
) -> None:
    for i in range(len(full)):
        for j in range(i, len(full)):
            splitter = ThinkSplitter(expect_thinking)
            parts = [splitter.feed(p) for p in (full[:i], full[i:j], full[j:])] + [splitter.flush()]
            assert "".join(a for a, _ in parts) == answer_text
            assert "".join(r for _, r in parts) == reasoning_text


def test_429_waits_for_retry_after_then_succeeds() -> None:
    with FakeOpenAI() as server:
        server.push(error(429, retry_after=1), answer("ok"))
        start = time.monotonic()
        assert collect(make_client(server.url))[0] == "ok"
        assert time.monotonic() - start >= 1.0
        assert len(server.bodies) == 2


def test_429_with_retry_after_past_the_budget_gives_up_at_once() -> None:
    with FakeOpenAI() as server:
        server.push(error(429, retry_after=300), answer("never"))
        start = time.monotonic()
        with pytest.raises(LLMError, match="429"):
            collect(make_client(server.url, llm_total_timeout=60))
        assert time.monotonic() - start < 20  # neither the 300 s it asked for nor the 60 s budget
        assert len(server.bodies) == 1


def test_5xx_is_retried_then_gives_up_after_the_configured_retries() -> None:
    with FakeOpenAI() as server:
        server.push(error(500), answer("ok"))
        assert collect(make_client(server.url))[0] == "ok"
    with FakeOpenAI() as server:
        server.push(error(500), error(502), error(503), answer("too late"))
        with pytest.raises(LLMError, match="after 3 attempts.*503"):
            collect(make_client(server.url, llm_retries=2))
        assert len(server.bodies) == 3


def test_client_errors_are_not_retried() -> None:
    with FakeOpenAI() as server:
        server.push(error(400, message="unknown field top_k"), answer("never"))
        with pytest.raises(LLMError, match="HTTP 400.*unknown field top_k"):
            collect(make_client(server.url))
        assert len(server.bodies) == 1


def test_slow_response_past_the_read_timeout_is_retried() -> None:
    with FakeOpenAI() as server:
        server.push(slow(300, answer("late")), answer("ok"))
        start = time.monotonic()
        assert collect(make_client(server.url, llm_read_timeout=0.5, llm_total_timeout=60))[0] == "ok"
        assert time.monotonic() - start < 20  # the 0.5 s read timeout ended the first try, not the 60 s budget


def test_total_budget_bounds_a_trickling_stream() -> None:
    with FakeOpenAI() as server:
        server.push(answer(["tick "] * 200, chunk_delay=0.3))  # a minute of text, never 1 s apart
        client = make_client(server.url, llm_read_timeout=1.0, llm_total_timeout=1.5)
        got: list[str] = []
        start = time.monotonic()
        with pytest.raises(LLMError, match="within 1.5s") as info:
            for event in client.stream(MESSAGES):
                if isinstance(event, TextDelta):
                    got.append(event.text)
        assert time.monotonic() - start < 20  # the 1.5 s budget ended it, not the stream's end
        assert info.value.after_output and got


def test_total_budget_bounds_retries_of_a_silent_server() -> None:
    with FakeOpenAI() as server:
        server.push(*(slow(300, answer("never")) for _ in range(5)))
        start = time.monotonic()
        with pytest.raises(LLMError):
            collect(make_client(server.url, llm_read_timeout=60, llm_total_timeout=1.2, llm_retries=5))
        assert time.monotonic() - start < 20  # the 1.2 s budget cut the first try short, not its 60 s read timeout


def test_refused_connection_is_retried_within_the_budget() -> None:
    start = time.monotonic()
    with pytest.raises(LLMError, match="after 2 attempts.*connection failed"):
        collect(make_client(closed_port_url(), llm_retries=1))
    assert time.monotonic() - start < 10  # make_client's budget


def test_stream_cut_after_text_is_not_retried_and_text_is_never_repeated() -> None:
    with FakeOpenAI() as server:
        server.push(answer(["Part one. ", "Part two.", "never"], cut_after=2), answer("DUPLICATE"))
        client = make_client(server.url)
        got: list[str] = []
        with pytest.raises(LLMError) as info:
            for event in client.stream(MESSAGES):
                if isinstance(event, TextDelta):
                    got.append(event.text)
        assert "".join(got) == "Part one. Part two."
        assert info.value.after_output
        assert len(server.bodies) == 1


def test_stream_cut_before_any_text_is_retried() -> None:
    with FakeOpenAI() as server:
        server.push(answer(["lost"], cut_after=0), answer("ok"))
        assert collect(make_client(server.url))[0] == "ok"
        assert len(server.bodies) == 2


def test_stream_ending_without_finish_reason_counts_as_cut() -> None:
    with FakeOpenAI() as server:
        server.push(answer(["half"], finish=None))
        with pytest.raises(LLMError, match="before the answer finished") as info:
            collect(make_client(server.url))
        assert info.value.after_output


def test_malformed_json_is_retried_and_reported() -> None:
    with FakeOpenAI() as server:
        server.push(malformed_json(), answer("ok"))
        assert collect(make_client(server.url))[0] == "ok"
    with FakeOpenAI() as server:
        server.push(answer(["a", "b"], malformed_after=1))
        with pytest.raises(LLMError, match="malformed"):
            collect(make_client(server.url))
    with FakeOpenAI() as server:
        server.push(malformed_json())
        with pytest.raises(LLMError, match="malformed"):
            make_client(server.url).ping()


def test_list_models_and_one_token_ping() -> None:
    with FakeOpenAI(models=["Qwen/Qwen3-8B", "other"]) as server:
        server.push(answer("OK"))
        client = make_client(server.url, llm_provider="vllm")
        assert client.list_models() == ["Qwen/Qwen3-8B", "other"]
        assert client.ping() == "OK"
        body = server.bodies[0]
        assert body["max_tokens"] == 1 and body["stream"] is True
        assert body["chat_template_kwargs"] == {"enable_thinking": False}


def test_api_key_goes_in_the_header_only(caplog: pytest.LogCaptureFixture) -> None:
    secret = "sk-test-very-secret-123"
    caplog.set_level(logging.DEBUG)
    with FakeOpenAI() as server:
        server.push(error(500), error(401, message=f"Incorrect API key provided: {secret}"))
        with pytest.raises(LLMError) as info:
            collect(make_client(server.url, llm_api_key=secret))
        assert {k.lower(): v for k, v in server.requests[0].headers.items()}["authorization"] == f"Bearer {secret}"
        assert secret not in str(server.bodies)
    assert "HTTP 401" in str(info.value)
    assert secret not in str(info.value) and secret not in caplog.text


def test_build_client_without_endpoint_is_none() -> None:
    assert build_client(load_settings(None).llm_config()) is None
    assert isinstance(build_client(load_settings(None, llm_base_url="http://127.0.0.1:9/v1").llm_config()), LLMClient)

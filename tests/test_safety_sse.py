"""A model server that sends some text and then only SSE keep-alive comments: the answer ends at the
deadline, and the worker thread and the connection end with it (they used to stay open for good)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator

import pytest
from fake_openai import FakeOpenAI, keep_alive_after
from test_llm_client import MESSAGES, make_client

from bot.llm import LLMClient, LLMError, TextDelta


def _wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _stream_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name == "llm-stream")


def test_keep_alives_after_some_text_end_at_the_deadline_and_free_the_connections() -> None:
    n = 10
    ended = [threading.Event() for _ in range(n)]
    errors: list[LLMError] = []
    texts: list[str] = []

    def ask(client: LLMClient) -> None:
        try:
            for event in client.stream(MESSAGES):
                if isinstance(event, TextDelta):
                    texts.append(event.text)
        except LLMError as exc:
            errors.append(exc)

    with FakeOpenAI() as server:
        server.push(*(keep_alive_after(["Full-time employees get ", "25 days"], done) for done in ended))
        clients = [make_client(server.url, llm_retries=0, llm_read_timeout=5.0, llm_total_timeout=1.5) for _ in ended]
        askers = [threading.Thread(target=ask, args=(client,)) for client in clients]
        start = time.monotonic()
        for t in askers:
            t.start()
        for t in askers:
            t.join(timeout=10)
        assert time.monotonic() - start < 10.0  # every answer gave up at its 1.5 s deadline (a loaded machine)
        assert len(errors) == n and all(e.after_output and "within 1.5s" in str(e) for e in errors)
        assert len(texts) >= n
        # before: 10 worker threads and 10 connections were still open 90 s later
        assert _wait_until(lambda: all(e.is_set() for e in ended), 5.0), "the server still streams to us"
        assert _wait_until(lambda: _stream_threads() == 0, 5.0), f"{_stream_threads()} stream threads left"


def test_a_caller_that_stops_reading_closes_the_connection_at_once() -> None:
    ended = threading.Event()
    with FakeOpenAI() as server:
        server.push(keep_alive_after(["Full-time employees get ", "25 days"], ended))
        client = make_client(server.url, llm_retries=0, llm_read_timeout=5.0, llm_total_timeout=60.0)
        stream = client.stream(MESSAGES)
        assert isinstance(stream, Generator)
        first = next(e for e in stream if isinstance(e, TextDelta))
        assert first.text
        stream.close()  # the answer was cut off (shutdown): the caller gives up long before the deadline
        assert _wait_until(ended.is_set, 3.0), "the connection stayed open after the caller gave up"
        assert _wait_until(lambda: _stream_threads() == 0, 3.0)


@pytest.fixture(autouse=True)
def _no_stream_threads_before() -> None:
    # threads of earlier tests in this process would be counted as ours
    assert _wait_until(lambda: _stream_threads() == 0, 10.0)

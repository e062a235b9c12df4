"""A model server that sends some text and then only SSE keep-alive comments: the answer ends at the
deadline, and the worker thread and the connection end with it (they used to stay open for good)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator

import pytest
from support.fake_openai import FakeOpenAI, keep_alive_after
from support.llm import MESSAGES, make_client

from bot.llm.client import LLMClient
from bot.llm.errors import LLMError
from bot.llm.events import TextDelta


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
    outcomes: list[tuple[bool, LLMError | None]] = []  # per answer: text seen, and how it ended

    def ask(client: LLMClient) -> None:
        got_text = False
        try:
            for event in client.stream(MESSAGES):
                got_text = got_text or (isinstance(event, TextDelta) and bool(event.text))
        except LLMError as exc:
            outcomes.append((got_text, exc))
            return
        outcomes.append((got_text, None))

    with FakeOpenAI() as server:
        server.push(*(keep_alive_after(["Full-time employees get ", "25 days"], done) for done in ended))
        clients = [make_client(server.url, llm_retries=0, llm_read_timeout=5.0, llm_total_timeout=2.0) for _ in ended]
        askers = [threading.Thread(target=ask, args=(client,)) for client in clients]
        start = time.monotonic()
        for t in askers:
            t.start()
        for t in askers:
            t.join(timeout=60)
        assert time.monotonic() - start < 30  # every answer gave up at its 2 s deadline, not the keep-alives' end
        assert len(outcomes) == n
        for got_text, error in outcomes:
            # keep-alives never count as progress: each answer ends at the deadline, and says whether
            # text had come (on a busy machine a client may reach its deadline before the first words)
            assert error is not None and "within 2s" in str(error) and error.after_output == got_text
        assert any(got_text for got_text, _ in outcomes), "no answer got its text before the keep-alives"
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

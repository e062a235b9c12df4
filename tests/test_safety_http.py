"""The Events API endpoint under load and abuse: a burst of signed events, an oversized unsigned body,
and many clients that never finish their request."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from support.fake_openai import answer
from support.fake_slack import BOT_USER, FakeSlack, event_body, mention_event, post_event
from support.slack_bot import QUESTION, Bot

from bot.slack.http import EVENTS_PATH, HttpLimits, HttpServer


def _rss_bytes() -> int:
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


def _response_status(sock: socket.socket) -> int:
    """The status code of the HTTP response on `sock` (only the status line is read)."""
    data = b""
    while b"\r\n" not in data:
        part = sock.recv(4096)
        if not part:
            raise ConnectionError(f"closed without a response (got {data!r})")
        data += part
    return int(data.split(b" ", 2)[1])


@pytest.fixture
def limited_server(make_bot: Callable[..., Bot]) -> Iterator[tuple[Bot, HttpServer]]:
    """The bot behind a second endpoint with a short read timeout."""
    bot = make_bot()
    server = HttpServer(bot.runtime.app, "127.0.0.1", 0, bot.runtime.health, HttpLimits(read_timeout=1.0))
    server.start()
    yield bot, server
    server.stop()


@pytest.mark.slow
def test_a_burst_of_100_signed_events_gets_100_acks_and_100_answers(make_bot: Callable[..., Bot]) -> None:
    n = 100
    bot = make_bot(rate_limit_per_minute=0)
    bot.llm.push(*[answer(["Full-time employees get 25 days [1]."]) for _ in range(n)])
    channels = [f"C0BURST{i:03d}" for i in range(n)]
    events = []
    for i, channel in enumerate(channels):
        ts = bot.slack.add_message(channel, f"U0USER{i:03d}", f"<@{BOT_USER}> {QUESTION}")
        events.append(
            (channel, ts, event_body(mention_event(channel, f"U0USER{i:03d}", f"<@{BOT_USER}> {QUESTION}", ts)))
        )
    statuses: list[int | str] = []
    together = threading.Barrier(n)

    def deliver(body: dict) -> None:
        together.wait()  # all at once, as Slack delivers a busy minute
        try:
            statuses.append(post_event(bot.url, body).status)
        except OSError as exc:  # before: 14-35 of 50 were ConnectionResetError (listen backlog 5)
            statuses.append(type(exc).__name__)

    senders = [threading.Thread(target=deliver, args=(body,)) for _, _, body in events]
    for t in senders:
        t.start()
    for t in senders:
        t.join()
    assert statuses == [200] * n

    def answered(slack: FakeSlack) -> bool:
        done = {
            m.channel
            for m in slack.bot_messages()
            if not m.streaming and m.blocks and m.blocks[-1].get("block_id") == "feedback"
        }
        return done >= set(channels)

    bot.slack.wait_for(answered, timeout=300)
    assert len(bot.llm.bodies) == n


def test_an_oversized_unsigned_body_is_refused_before_it_is_read(limited_server: tuple[Bot, HttpServer]) -> None:
    bot, server = limited_server
    rss = _rss_bytes()
    declared = 400 * 1024 * 1024
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(
            f"POST {EVENTS_PATH} HTTP/1.1\r\nHost: bot\r\nContent-Type: application/json\r\n"
            f"Content-Length: {declared}\r\n\r\n".encode()
        )
        try:
            for _ in range(64):  # up to 64 MiB of it, until the server hangs up
                sock.sendall(b"x" * (1024 * 1024))
        except OSError:
            pass
        # before: the server read and parsed all of it (149 MB -> 873 MB for 400 MB) before any check
        assert _response_status(sock) == 413
    assert time.monotonic() - start < 30
    assert _rss_bytes() - rss < 32 * 1024 * 1024
    assert bot.slack.calls_to("chat.postMessage") == []


def test_a_chunked_body_is_cut_off_at_the_cap_while_streaming(limited_server: tuple[Bot, HttpServer]) -> None:
    _, server = limited_server
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(
            f"POST {EVENTS_PATH} HTTP/1.1\r\nHost: bot\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n".encode()
        )
        piece = b"x" * 65536
        try:
            for _ in range(64):  # 4 MiB, no length declared
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
        except OSError:
            pass
        assert _response_status(sock) == 413


def test_many_half_open_connections_hold_no_threads_and_are_closed(limited_server: tuple[Bot, HttpServer]) -> None:
    bot, server = limited_server
    threads = threading.active_count()
    clients = []
    for _ in range(300):
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        sock.sendall(b"POST /slack/eve")  # half a request line, and then nothing
        clients.append(sock)
    try:
        # before: one thread each, held for as long as the client liked (1,500 connections: 1,510 threads)
        assert threading.active_count() - threads < 10
        bot.llm.push(answer(["Full-time employees get 25 days [1]."]))
        ts = bot.slack.add_message("C0GENERAL", "U0ALICE", f"<@{BOT_USER}> {QUESTION}")
        event = mention_event("C0GENERAL", "U0ALICE", f"<@{BOT_USER}> {QUESTION}", ts)
        assert post_event(f"http://127.0.0.1:{server.port}{EVENTS_PATH}", event_body(event)).status == 200
        # each is hung up on once its read timeout (1 s here) is over
        for sock in clients:
            assert sock.recv(1024) == b""
    finally:
        for sock in clients:
            sock.close()


def test_a_body_that_never_finishes_gets_408_at_the_read_timeout(limited_server: tuple[Bot, HttpServer]) -> None:
    _, server = limited_server
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
        sock.sendall(f'POST {EVENTS_PATH} HTTP/1.1\r\nHost: bot\r\nContent-Length: 100\r\n\r\n{{"type":'.encode())
        assert _response_status(sock) == 408
    assert time.monotonic() - start < 8  # the read timeout is 1 s here; without it, 10 s (HttpLimits' default)

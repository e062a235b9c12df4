"""A wrong or empty SLACK_SIGNING_SECRET: every request is refused with 401, the log says once a
minute (with a count) that SLACK_SIGNING_SECRET is the thing to check, and never what was asked;
an empty secret stops `qwenbot run --http` at start with one line."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from slack_bolt.request import BoltRequest
from slack_bolt.response import BoltResponse
from support.fake_openai import closed_port_url
from support.fake_slack import BOT_TOKEN, SIGNING_SECRET, sign
from support.slack_bot import Bot

from bot import cli
from bot.slack.signing import SignedRequests

PRIVATE = "can I be fired for my medical leave next month?"


def test_a_wrong_signing_secret_is_one_warning_naming_it_and_the_question_is_never_logged(
    make_bot: Callable[..., Bot],
    caplog: pytest.LogCaptureFixture,
) -> None:
    bot = make_bot(slack_signing_secret="not-what-slack-signs-with")
    with caplog.at_level(logging.DEBUG):
        deliveries = [bot.ask(PRIVATE, user="U0PRIVATE")[1] for _ in range(3)]
        bot.wait_idle()
    assert [d.status for d in deliveries] == [401] * 3
    # before: an INFO line "Invalid request signature detected (... body: ...)" per request
    assert not [r for r in caplog.records if "U0PRIVATE" in r.getMessage() or "medical leave" in r.getMessage()]
    [warning] = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert warning.name == "bot.slack.signing"
    assert "SLACK_SIGNING_SECRET" in warning.getMessage() and "refused 1 Slack request " in warning.getMessage()
    assert "not-what-slack-signs-with" not in caplog.text
    assert set(bot.slack.methods()) <= {"auth.test"} and not bot.llm.bodies


def _request(secret: str, *, timestamp: float | None = None) -> BoltRequest:
    body = '{"type": "event_callback", "event": {"type": "app_mention", "text": "hi"}}'
    ts = str(int(time.time() if timestamp is None else timestamp))
    headers: dict[str, str | Sequence[str]] = {
        "x-slack-request-timestamp": ts,
        "x-slack-signature": sign(secret, ts, body.encode()),
    }
    return BoltRequest(body=body, headers=headers)


def _status(check: SignedRequests, request: BoltRequest) -> int:
    """The HTTP status the middleware answers with (200: it passed the request on)."""
    passed_on = BoltResponse(status=200)
    response = check.process(req=request, resp=BoltResponse(status=500), next=lambda: passed_on)
    assert response is not None
    return response.status


def test_refusals_are_counted_and_warned_about_once_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    now = [1000.0]
    check = SignedRequests(SIGNING_SECRET, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="bot.slack.signing"):
        for at in (1000.0, 1010.0, 1030.0, 1059.0):
            now[0] = at
            assert _status(check, _request("wrong")) == 401
        assert len(caplog.records) == 1 and "refused 1 Slack request " in caplog.records[0].getMessage()
        now[0] = 1061.0
        assert _status(check, _request("wrong")) == 401
        assert _status(check, _request(SIGNING_SECRET)) == 200
    [_, second] = [r.getMessage() for r in caplog.records]
    assert "refused 4 Slack requests" in second and "SLACK_SIGNING_SECRET" in second


def test_a_stale_timestamp_points_at_the_clock(caplog: pytest.LogCaptureFixture) -> None:
    check = SignedRequests(SIGNING_SECRET)
    with caplog.at_level(logging.INFO, logger="bot.slack.signing"):
        assert _status(check, _request(SIGNING_SECRET, timestamp=time.time() - 600)) == 401
    [warning] = caplog.records
    assert "clock" in warning.getMessage()


def test_an_empty_signing_secret_stops_run_http_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "")
    monkeypatch.setenv("QWENBOT_SLACK_API_URL", closed_port_url())  # before the fix, the start went on to here
    monkeypatch.setenv("QWENBOT_INDEX_DIR", str(tmp_path / "index"))
    monkeypatch.setenv("QWENBOT_STATE_DB", str(tmp_path / "state.sqlite3"))
    assert cli.main(["--env-file", os.devnull, "run", "--http"]) == 2
    [line] = [line for line in capsys.readouterr().err.splitlines() if line.startswith("qwenbot run:")]
    assert "SLACK_SIGNING_SECRET is empty" in line

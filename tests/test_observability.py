"""Seeing what the bot does: Prometheus metrics scraped from a running bot (HTTP mode, Socket Mode's
metrics port, and `qwenbot run` itself), the one log line per question, JSON logs, and the library
noise that no longer reaches the log. Real index, fake Slack and fake OpenAI-compatible model."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support.fake_openai import answer, error
from support.fake_slack import (
    BOT_TOKEN,
    BOT_USER,
    SIGNING_SECRET,
    FakeSlack,
    Message,
    block_action_payload,
    event_body,
    mention_event,
    post_event,
    post_interaction,
)
from support.metrics import sample, scrape
from support.paths import REPO
from support.processes import OutputLines
from support.slack_bot import GENERAL, QUESTION, VACATION_ANSWER, Bot

from bot.errors import StartupError
from bot.logs import FIELDS, UserHasher
from bot.runtime import BotRuntime
from bot.settings import load_settings
from bot.slack.render.feedback import ACTION_DOWN, ACTION_UP

ALICE = "U0ALICE"


def _feedback(message: Message, rating: str) -> tuple[str, str] | None:
    """The (action id, value) a click on 👍 or 👎 under an answer sends, whichever feedback element the
    answer carries; None for a message without one."""
    for block in message.blocks:
        for element in block.get("elements", []):
            if element.get("type") == "feedback_buttons":  # Slack's own: one element, a value per button
                return element["action_id"], element["positive_button" if rating == "up" else "negative_button"][
                    "value"
                ]
            if element.get("action_id") == (ACTION_UP if rating == "up" else ACTION_DOWN):
                return element["action_id"], element["value"]
    return None


def _rate(bot: Bot, message: Message, rating: str, user: str) -> None:
    found = _feedback(message, rating)
    assert found, message.blocks
    payload = block_action_payload(
        *found,
        user=user,
        channel=message.channel,
        message_ts=message.ts,
        thread_ts=message.thread_ts,
        response_url=bot.slack.response_url("action"),
    )
    assert post_interaction(bot.url, payload).status == 200


def test_metrics_move_after_a_question_and_feedback_and_the_question_is_one_log_line(
    make_bot: Callable[..., Bot], caplog: pytest.LogCaptureFixture
) -> None:
    bot = make_bot()
    before = bot.metrics()
    assert sample(before, "qwenbot_questions_total", mode="generated") == 0
    assert sample(before, "qwenbot_feedback_total", rating="up") == 0
    info = bot.runtime.index_info()
    assert sample(before, "qwenbot_index_documents") == info.documents > 40
    assert sample(before, "qwenbot_index_chunks") == info.chunks > info.documents
    assert sample(before, "qwenbot_index_age_seconds") > 0
    assert sample(before, "qwenbot_answers_in_flight") == 0

    bot.llm.push(answer(VACATION_ANSWER))  # usage: 42 prompt + 7 completion tokens
    with caplog.at_level(logging.INFO, logger="bot"):
        ts, _ = bot.ask(QUESTION)
        [message] = bot.answer_in(GENERAL, ts)
        assert bot.runtime.workers.wait_idle(10)
    after = bot.metrics()
    assert sample(after, "qwenbot_questions_total", mode="generated") == 1
    assert sample(after, "qwenbot_questions_total", mode="not_found") == 0
    for histogram in ("qwenbot_search_seconds", "qwenbot_first_token_seconds", "qwenbot_answer_seconds"):
        assert sample(after, f"{histogram}_count") == 1
    assert 0 < sample(after, "qwenbot_search_seconds_sum") < sample(after, "qwenbot_answer_seconds_sum")
    assert sample(after, "qwenbot_answers_in_flight") == 0

    [line] = [r for r in caplog.records if r.getMessage().startswith("question ")]
    assert line.levelno == logging.INFO
    fields = getattr(line, FIELDS)
    hashed = UserHasher.from_config(bot.settings.log_config())(ALICE)
    assert fields["user"] == hashed and hashed != ALICE
    assert {k: fields[k] for k in ("channel", "mode", "cited", "prompt_tokens", "completion_tokens")} == {
        "channel": GENERAL,
        "mode": "generated",
        "cited": ["hr/vacation.md"],
        "prompt_tokens": 42,
        "completion_tokens": 7,
    }
    assert fields["event_id"].startswith("Ev")
    assert 0 < fields["search_s"] <= fields["first_token_s"] <= fields["total_s"]
    text = line.getMessage()
    assert ALICE not in text and f"user={hashed}" in text
    assert "mode=generated" in text and "cited=hr/vacation.md" in text
    assert QUESTION not in text  # what people ask stays out of the log

    _rate(bot, message, "up", "U0BOB")
    assert bot.runtime.workers.wait_idle(10)  # Bolt hands a click to the workers before it acks
    assert "Answered 1 question; 1 rating received" in bot.runtime.status_report()  # not "1 ratings"
    _rate(bot, message, "down", "U0CAROL")
    assert bot.runtime.workers.wait_idle(10)
    rated = bot.metrics()
    assert sample(rated, "qwenbot_feedback_total", rating="up") == 1
    assert sample(rated, "qwenbot_feedback_total", rating="down") == 1


def test_user_hash_is_stable_keyed_and_never_the_id(no_settings: pytest.MonkeyPatch) -> None:
    config = load_settings(None, slack_bot_token=BOT_TOKEN).log_config()
    salted = load_settings(None, slack_bot_token=BOT_TOKEN, log_user_salt="another-secret").log_config()
    assert UserHasher.from_config(config)(ALICE) == UserHasher.from_config(config)(ALICE)
    assert UserHasher.from_config(config)(ALICE) != UserHasher.from_config(salted)(ALICE)
    assert UserHasher.from_config(config)(ALICE) != UserHasher.from_config(config)("U0BOB")


def test_slack_429s_slack_errors_model_errors_and_refusals_are_counted(make_bot: Callable[..., Bot]) -> None:
    bot = make_bot(allowed_channels=GENERAL)
    bot.llm.push(error(500))  # no retries: the model is unavailable, the answer quotes the docs
    bot.ask(QUESTION)
    # a question in a channel the bot is not enabled in: refused; its notice is rate-limited once
    # (and retried after Retry-After), then fails
    bot.slack.fail("chat.postEphemeral", "ratelimited", status=429, retry_after=0)
    bot.slack.fail("chat.postEphemeral", "user_not_in_channel")
    bot.ask(QUESTION, channel="C0RANDOM")
    assert bot.runtime.workers.wait_idle(30)  # Bolt hands an event to the workers before it acks

    samples = bot.metrics()
    assert len(bot.slack.calls_to("chat.postEphemeral", ok_only=False)) == 2
    assert sample(samples, "qwenbot_slack_rate_limited_total", method="chat.postEphemeral") == 1
    assert (
        sample(samples, "qwenbot_slack_api_errors_total", method="chat.postEphemeral", error="user_not_in_channel") == 1
    )
    assert sample(samples, "qwenbot_model_errors_total", kind="server") == 1
    assert sample(samples, "qwenbot_questions_total", mode="extractive") == 1
    assert sample(samples, "qwenbot_questions_total", mode="refused") == 1


def test_socket_mode_serves_metrics_on_its_own_port(corpus_index: Path, tmp_path: Path, free_port: int) -> None:
    values: dict[str, Any] = {
        "index_dir": corpus_index,
        "state_db": tmp_path / "state.sqlite3",
        "slack_bot_token": BOT_TOKEN,
        "metrics_host": "127.0.0.1",
        "metrics_port": free_port,
        "index_on_start": False,
    }
    with FakeSlack() as slack:
        runtime = BotRuntime(load_settings(None, slack_api_url=slack.api_url, **values))
        try:
            samples = scrape(f"http://127.0.0.1:{free_port}/metrics")
            assert sample(samples, "qwenbot_index_documents") == runtime.index_info().documents
            assert sample(samples, "qwenbot_questions_total", mode="generated") == 0
            # the port taken (here: by this bot): one line naming the setting, not a traceback
            with pytest.raises(StartupError, match=f"127.0.0.1:{free_port}.*QWENBOT_METRICS_PORT"):
                runtime.metrics.serve("127.0.0.1", free_port)
        finally:
            runtime.close()
    with pytest.raises(OSError):  # closed with the bot
        urllib.request.urlopen(f"http://127.0.0.1:{free_port}/metrics", timeout=2)


_NOISE = """
import logging, sys, threading, http.server, httpx, openai
from bot import logs
from retrieval.lexical import LexicalIndex

logs.configure(sys.argv[1], "text")
class Quiet(http.server.BaseHTTPRequestHandler):  # answers 501, logs nothing itself
    def log_message(self, *args): pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
threading.Thread(target=server.serve_forever, daemon=True).start()
url = f"http://127.0.0.1:{server.server_address[1]}"
httpx.get(f"{url}/chroma")  # Chroma's HTTP client: a line per request at INFO
try:  # the model endpoint's client (the openai SDK's http library): the same
    openai.OpenAI(base_url=f"{url}/v1", api_key="k", max_retries=0).models.list()
except openai.APIStatusError:
    pass
LexicalIndex.build("stamp", ["a"], ["parking in lot B"], ["p.md"], [()])  # bm25s logs at DEBUG
logging.getLogger("bot.check").info("the bot's own line")
"""


@pytest.mark.parametrize(("level", "noisy"), [("INFO", False), ("DEBUG", True)])
def test_library_chatter_is_kept_out_of_the_log_below_debug(level: str, noisy: bool) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _NOISE, level], cwd=REPO, capture_output=True, text=True, timeout=120, check=True
    )
    assert "the bot's own line" in done.stderr
    assert ("/chroma" in done.stderr, "/v1/models" in done.stderr) == (noisy, noisy), done.stderr
    assert ("Building index from tokens" in done.stderr) is noisy, done.stderr


@pytest.mark.slow
def test_qwenbot_run_logs_json_lines_one_per_question_without_the_noise(corpus_index: Path, tmp_path: Path) -> None:
    """`qwenbot run --http` as an admin starts it first: no model (extractive answers), JSON logs."""
    with FakeSlack() as slack:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("QWENBOT_", "SLACK_"))}
        env.update(
            {
                "SLACK_BOT_TOKEN": BOT_TOKEN,  # in the environment, where Bolt would also look for it
                "SLACK_SIGNING_SECRET": SIGNING_SECRET,
                "QWENBOT_SLACK_API_URL": slack.api_url,
                "QWENBOT_INDEX_DIR": str(corpus_index),
                "QWENBOT_STATE_DB": str(tmp_path / "state.sqlite3"),
                "QWENBOT_LOG_FORMAT": "json",
                "QWENBOT_INDEX_ON_START": "false",  # the shared session index is not this bot's to re-index
            }
        )
        command = [sys.executable, "-m", "bot.cli", "--env-file", os.devnull, "run", "--http"]
        proc = subprocess.Popen(
            [*command, "--host", "127.0.0.1", "--port", "0"], cwd=REPO, env=env, stderr=subprocess.PIPE, text=True
        )
        assert proc.stderr is not None
        stderr = OutputLines(proc.stderr)
        try:
            port = stderr.wait_for(r"Events API on http://127.0.0.1:(\d+)/", timeout=90).group(1)
            base = f"http://127.0.0.1:{port}"
            ts = slack.add_message(GENERAL, ALICE, f"<@{BOT_USER}> {QUESTION}")
            body = event_body(mention_event(GENERAL, ALICE, f"<@{BOT_USER}> {QUESTION}", ts))
            assert post_event(f"{base}/slack/events", body).status == 200
            stderr.wait_for(r'"message": "question ', timeout=60)
            samples = scrape(f"{base}/metrics")
            assert sample(samples, "qwenbot_questions_total", mode="extractive") == 1
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        lines = [json.loads(line) for line in stderr.all(timeout=10).splitlines()]  # every line is JSON

    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
    [question] = [line for line in lines if line["message"].startswith("question ")]
    assert question["level"] == "INFO" and question["logger"] == "bot.slack.answering"
    assert question["mode"] == "extractive" and question["channel"] == GENERAL
    assert question["event_id"] == body["event_id"] and question["cited"] and "hr/vacation.md" in question["cited"]
    assert question["search_s"] > 0 and question["total_s"] >= question["search_s"]
    assert "QWENBOT_LLM_BASE_URL is unset" in question["note"]
    everything = json.dumps(lines)
    assert ALICE not in everything and BOT_TOKEN not in everything
    # an extractive answer is normal without a model: nothing about it (or anything else) is a warning
    assert not [line for line in lines if line["level"] in ("WARNING", "ERROR")], lines
    assert "will be unused" not in everything  # Bolt no longer gets the token twice

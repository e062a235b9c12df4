"""`/healthz` and `/metrics` off the public Events API port: with QWENBOT_METRICS_PORT they are served
there (in any mode), and the port Slack sends its requests to serves /slack/events alone."""

from __future__ import annotations

import json
import signal
import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from support.fake_openai import FakeOpenAI
from support.fake_slack import BOT_TOKEN, FakeSlack, command_form, post_form
from support.metrics import sample, scrape
from support.outage import http_status
from support.processes import running_bot
from support.slack_bot import GENERAL

from bot.errors import StartupError
from bot.runtime import BotRuntime
from bot.settings import load_settings


@pytest.mark.slow
def test_with_a_metrics_port_the_events_port_serves_slack_events_alone(
    tmp_path: Path, corpus_index: Path, free_port: int
) -> None:
    env = {"QWENBOT_METRICS_HOST": "127.0.0.1", "QWENBOT_METRICS_PORT": str(free_port)}
    with FakeSlack() as slack, FakeOpenAI() as llm, running_bot(slack, llm, corpus_index, tmp_path, **env) as bot:
        public, operations = bot.url.removesuffix("/slack/events"), f"http://127.0.0.1:{free_port}"
        assert http_status(f"{public}/healthz") == 404 and http_status(f"{public}/metrics") == 404
        form = command_form("help", user="U0ALICE", channel=GENERAL, response_url=slack.response_url("help"))
        assert post_form(bot.url, form).status == 200

        with urllib.request.urlopen(f"{operations}/healthz", timeout=10) as resp:
            assert resp.status == 200 and json.loads(resp.read())["index_documents"] > 40
        assert sample(scrape(f"{operations}/metrics"), "qwenbot_index_documents") > 40
        request = urllib.request.Request(f"{operations}/slack/events", data=b"{}")
        with pytest.raises(urllib.error.HTTPError, match="404"):  # Slack's requests go to the other port only
            urllib.request.urlopen(request, timeout=10)
        bot.proc.send_signal(signal.SIGTERM)
        assert bot.proc.wait(timeout=30) == 0


def test_a_metrics_port_in_use_stops_the_start_with_one_line(
    tmp_path: Path, corpus_index: Path, free_port: int
) -> None:
    with FakeSlack() as slack, socket.create_server(("127.0.0.1", free_port)):
        settings = load_settings(
            None,
            slack_api_url=slack.api_url,
            slack_bot_token=BOT_TOKEN,
            index_dir=corpus_index,
            state_db=tmp_path / "state.sqlite3",
            metrics_host="127.0.0.1",
            metrics_port=free_port,
            index_on_start=False,
        )
        with pytest.raises(StartupError, match=f"127.0.0.1:{free_port}.*QWENBOT_METRICS_PORT"):
            BotRuntime(settings)

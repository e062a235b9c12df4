"""The running bot and index jobs, as `qwenbot run --http` processes:
- issue 21, item 8: for a forwarded `qwenbot index` or `/qwenbot reindex` the bot's log said only
  "requested"; each job now logs one line of counts (no document text);
- issue 19, item 14: the bot could not start while a terminal `qwenbot index` held the index ("in use
  by another process"); it now waits for that job, then starts;
- issue 21, item 11: /healthz said ok before the embedding model was loaded (the first question's
  search took 9.6 s); the bot now serves only once it is loaded."""

from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.docs import BIKES, LUNCH, one_doc_index
from support.fake_openai import FakeOpenAI
from support.fake_slack import BOT_TOKEN, SIGNING_SECRET, FakeSlack, command_form, post_form
from support.paths import REPO
from support.processes import running_bot, wait_until
from support.slack_bot import GENERAL

from bot import cli
from retrieval.embeddings import Embedder

pytestmark = pytest.mark.slow  # `qwenbot run --http` processes

SECRET_LINE = "Lunch is served at noon on Fridays in the atrium"  # a document's text: never in the log


def serving_port(log: list[str]) -> str | None:
    return next((m.group(1) for line in log if (m := re.search(r"Events API on http://[\d.]+:(\d+)/", line))), None)


def test_each_index_job_the_bot_runs_logs_what_it_did(
    tmp_path: Path, embedder: Embedder, no_settings: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    docs, index_dir = one_doc_index(tmp_path, embedder)
    env = {"QWENBOT_DOCS_DIR": str(docs), "QWENBOT_ADMIN_USERS": "U0ADMIN"}
    with FakeSlack() as slack, FakeOpenAI() as llm, running_bot(slack, llm, index_dir, tmp_path, **env) as bot:
        # `qwenbot index` in an admin's shell: the bot holds the index, so the job is forwarded to it
        no_settings.setenv("QWENBOT_INDEX_DIR", str(index_dir))
        no_settings.setenv("QWENBOT_DOCS_DIR", str(docs))
        (docs / "lunch.md").write_text(LUNCH)
        (docs / "broken.pdf").write_bytes(b"%PDF-1.4 not really a pdf")
        assert cli.main(["--env-file", os.devnull, "index", "--no-progress"]) == 1
        assert "the running bot (pid" in capsys.readouterr().err
        wait_until(lambda: any("index job (control channel)" in line for line in bot.log), "the job's log line")
        [line] = [line for line in bot.log if "index job (control channel)" in line]
        assert "index job (control channel): 1 added, 0 updated, 0 renamed, 0 removed, 1 failed (1 new), " in line
        assert line.rstrip().endswith("; index: 2 documents, 2 chunks; exit 1"), line

        # `/qwenbot reindex` from an admin in Slack
        (docs / "bikes.md").write_text(BIKES)
        (docs / "lunch.md").unlink()
        form = command_form("reindex", user="U0ADMIN", channel=GENERAL, response_url=slack.response_url("r"))
        assert post_form(bot.url, form).status == 200
        wait_until(lambda: any("index job (/qwenbot reindex)" in line for line in bot.log), "the reindex log line")
        [line] = [line for line in bot.log if "index job (/qwenbot reindex)" in line]
        assert ": 1 added, 0 updated, 0 renamed, 1 removed, 1 failed (0 new), " in line, line
        assert not any(SECRET_LINE in line for line in bot.log)


def lock_held(index_dir: Path) -> bool:
    """Whether some process holds the index lock (asked the way another process would)."""
    with open(index_dir / ".lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def bot_environ(slack: FakeSlack, llm: FakeOpenAI, docs: Path, index_dir: Path, tmp_path: Path) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("QWENBOT_", "SLACK_"))}
    environ.update(
        {
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "QWENBOT_SLACK_API_URL": slack.api_url,
            "QWENBOT_LLM_BASE_URL": llm.url,
            "QWENBOT_INDEX_DIR": str(index_dir),
            "QWENBOT_DOCS_DIR": str(docs),
            "QWENBOT_STATE_DB": str(tmp_path / "state.sqlite3"),
            "QWENBOT_INDEX_ON_START": "false",
        }
    )
    return environ


class Process:
    """A qwenbot command in its own process, its stderr gathered line by line."""

    def __init__(self, args: list[str], environ: dict[str, str], tmp_path: Path) -> None:
        command = [sys.executable, "-m", "bot.cli", "--env-file", os.devnull, *args]
        self.proc = subprocess.Popen(
            command, cwd=REPO, env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        self.log: list[str] = []
        stderr = self.proc.stderr
        assert stderr is not None
        threading.Thread(target=lambda: self.log.extend(iter(stderr.readline, "")), daemon=True).start()

    def close(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)  # should it still be stopped
            self.proc.kill()
        self.proc.wait()


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    started: list[Process] = []
    try:
        yield started
    finally:
        for process in started:
            process.close()


def test_the_bot_waits_for_a_terminal_index_job_then_starts(
    tmp_path: Path, embedder: Embedder, processes: list[Process]
) -> None:
    docs, index_dir = one_doc_index(tmp_path, embedder)
    (docs / "lunch.md").write_text(LUNCH)
    (docs / "bikes.md").write_text(BIKES)
    with FakeSlack() as slack, FakeOpenAI() as llm:
        environ = bot_environ(slack, llm, docs, index_dir, tmp_path)
        # An admin's `qwenbot index` in a terminal, held mid-job (as Ctrl-Z would) while it has the index.
        job = Process(["index", "--no-progress"], environ, tmp_path)
        processes.append(job)
        wait_until(lambda: lock_held(index_dir) or job.proc.poll() is not None, "the job to take the index")
        os.kill(job.proc.pid, signal.SIGSTOP)
        assert job.proc.poll() is None and lock_held(index_dir), "the job ended before it could be held"

        bot = Process(["run", "--http", "--host", "127.0.0.1", "--port", "0"], environ, tmp_path)
        processes.append(bot)
        wait_until(
            lambda: any("waiting for it to finish" in line for line in bot.log) or bot.proc.poll() is not None,
            "the bot to say it waits",
        )
        assert bot.proc.poll() is None, "".join(bot.log)
        [waiting] = [line for line in bot.log if "waiting for it to finish" in line]
        assert f"the index in {index_dir} is in use by process {job.proc.pid}" in waiting
        assert serving_port(bot.log) is None

        os.kill(job.proc.pid, signal.SIGCONT)
        assert job.proc.wait(timeout=120) == 0
        wait_until(lambda: serving_port(bot.log) or bot.proc.poll() is not None, "the bot to start", timeout=120)
        assert bot.proc.poll() is None, "".join(bot.log)
        with urllib.request.urlopen(f"http://127.0.0.1:{serving_port(bot.log)}/healthz", timeout=30) as resp:
            assert json.loads(resp.read())["index_documents"] == 3  # the job's work, served by the bot


def test_the_bot_serves_only_once_its_embedding_model_is_loaded(tmp_path: Path, embedder: Embedder) -> None:
    docs, index_dir = one_doc_index(tmp_path, embedder)
    with FakeSlack() as slack, FakeOpenAI() as llm, running_bot(slack, llm, index_dir, tmp_path) as bot:
        loaded = next(i for i, line in enumerate(bot.log) if "embedding model" in line and " loaded in " in line)
        serving = next(i for i, line in enumerate(bot.log) if serving_port([line]))
        assert loaded < serving, "".join(bot.log)
        with urllib.request.urlopen(bot.url.replace("/slack/events", "/healthz"), timeout=30) as resp:
            assert resp.status == 200 and json.loads(resp.read())["ok"] is True

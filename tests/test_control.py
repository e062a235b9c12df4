"""Indexing while the bot runs: `qwenbot index`, `ask`, `doctor` and `eval` next to a running bot on the
default local index (through its control channel), `/qwenbot reindex` for admins, watching the docs
folder, and indexing at start."""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.docs import BIKES, LUNCH, one_doc_index
from support.fake_openai import FakeOpenAI, answer
from support.fake_slack import BOT_USER, FakeSlack, command_form, event_body, mention_event, post_event, post_form
from support.processes import Running, running_bot, wait_until
from support.slack_bot import GENERAL, Bot

from bot import cli
from bot.indexing.control import SECRET_NAME, SOCKET_NAME, index_info
from bot.settings import SettingsError, load_settings
from bot.slack.listeners.commands import NOT_AN_ADMIN
from retrieval.config import IndexConfig
from retrieval.embeddings import Embedder


def stale_socket(path: Path) -> None:
    """What a killed bot leaves: a socket file nobody listens on."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(path))


@dataclass
class BotProcess:
    bot: Running
    slack: FakeSlack
    llm: FakeOpenAI
    docs: Path
    index_dir: Path
    env_file: str


@pytest.fixture(scope="module")
def bot_process(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[BotProcess]:
    """`qwenbot run --http` on a local index of one document; a second one is written before the bot
    starts (it indexes it at start), and a stale socket from a killed bot is in the index folder."""
    tmp = tmp_path_factory.mktemp("control")
    docs, index_dir = one_doc_index(tmp, embedder)
    (docs / "bikes.md").write_text(BIKES)
    stale_socket(index_dir / SOCKET_NAME)
    with (
        FakeSlack() as slack,
        FakeOpenAI() as llm,
        running_bot(slack, llm, index_dir, tmp, QWENBOT_DOCS_DIR=str(docs), QWENBOT_INDEX_ON_START="true") as bot,
    ):
        yield BotProcess(bot, slack, llm, docs, index_dir, os.devnull)


@pytest.fixture
def next_to(bot_process: BotProcess, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> BotProcess:
    """This process set up as an admin's shell beside the bot: the same index and docs folder."""
    for name in list(os.environ):
        if name.startswith(("QWENBOT_", "SLACK_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("QWENBOT_INDEX_DIR", str(bot_process.index_dir))
    monkeypatch.setenv("QWENBOT_DOCS_DIR", str(bot_process.docs))
    monkeypatch.setenv("QWENBOT_LLM_BASE_URL", bot_process.llm.url)
    monkeypatch.setenv("QWENBOT_LLM_RETRIES", "0")
    monkeypatch.chdir(tmp_path)
    return bot_process


def documents(bot: BotProcess) -> int:
    return index_info(IndexConfig(index_dir=bot.index_dir)).documents


@pytest.mark.slow
def test_the_bot_indexes_new_docs_at_start_in_the_background(next_to: BotProcess) -> None:
    # the bot was serving before this job ended: the index as it was answered meanwhile
    wait_until(lambda: documents(next_to) == 2, "bikes.md to be indexed at start")
    wait_until(lambda: any("index (at start): this run:" in line for line in next_to.bot.log), "the job's log line")


@pytest.mark.slow
def test_qwenbot_index_hands_the_job_to_the_bot_and_the_next_question_answers_from_it(
    next_to: BotProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    before = documents(next_to)
    (next_to.docs / "lunch.md").write_text(LUNCH)
    assert cli.main(["--env-file", next_to.env_file, "index", str(next_to.docs / "lunch.md")]) == 0
    out, err = capsys.readouterr()
    assert "the running bot (pid" in err and "holds the index" in err
    assert "this run: 1 file: 1 added" in out, out
    assert documents(next_to) == before + 1  # counted by the bot's BM25 index: refreshed already
    # no restart, no waiting: the very next question searches the new chunks (dense and BM25)
    next_to.llm.push(answer(["Lunch is at noon on Fridays [1]."]))
    text = f"<@{BOT_USER}> when is lunch served?"
    ts = next_to.slack.add_message(GENERAL, "U0ALICE", text)
    assert post_event(next_to.bot.url, event_body(mention_event(GENERAL, "U0ALICE", text, ts))).status == 200
    next_to.slack.wait_for(
        lambda s: [m for m in s.bot_messages(GENERAL, ts) if not m.streaming and "noon" in m.text], timeout=90
    )
    assert "in the atrium" in json.dumps(next_to.llm.bodies[-1])  # the new document was the model's source


@pytest.mark.slow
def test_qwenbot_ask_and_doctor_read_through_the_running_bot(
    next_to: BotProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    next_to.llm.push(answer(["Visitors park in lot B [1]."]))
    assert cli.main(["--env-file", next_to.env_file, "ask", "where do visitors park?"]) == 0
    out = capsys.readouterr().out
    assert "lot B" in out and "parking.md" in out
    cli.main(["--env-file", next_to.env_file, "doctor"])  # other checks (Slack) fail here: not ours
    index_row = next(line for line in capsys.readouterr().out.splitlines() if line.split()[1:2] == ["index"])
    assert index_row.startswith("PASS") and "documents" in index_row, index_row


@pytest.mark.slow
def test_eval_is_not_affected_by_a_running_bot(next_to: BotProcess, tmp_path: Path) -> None:
    questions = tmp_path / "questions.jsonl"
    questions.write_text(json.dumps({"id": "q1", "question": "where do visitors park?", "sources": ["parking.md"]}))
    assert cli.main(["--env-file", next_to.env_file, "eval", str(questions), "--docs", str(next_to.docs)]) == 0


@pytest.mark.slow
def test_the_control_channel_answers_only_with_the_secret(next_to: BotProcess) -> None:
    sock_path, secret_path = next_to.index_dir / SOCKET_NAME, next_to.index_dir / SECRET_NAME
    assert stat.S_IMODE(secret_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(sock_path.stat().st_mode) == 0o600
    right = secret_path.read_text().strip()
    wrong = right[:-1] + ("0" if right[-1] != "0" else "1")
    for request in (
        {"op": "stats", "args": {}},
        {"secret": wrong, "op": "stats", "args": {}},
        {"secret": "", "op": "index", "args": {}},
        "not json",
    ):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(10)
            conn.connect(str(sock_path))
            conn.sendall((json.dumps(request) + "\n").encode())
            assert conn.recv(4096) == b"", request  # closed with nothing said
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.connect(str(sock_path))
        conn.sendall((json.dumps({"secret": right, "op": "stats", "args": {}}) + "\n").encode())
        with conn.makefile("rb") as reader:
            assert json.loads(reader.readline())["stats"]["documents"] >= 2
    wait_until(
        lambda: sum("refused a request without the right secret" in line for line in next_to.bot.log) >= 4,
        "the refusals to be logged",
    )


def test_without_a_bot_a_stale_socket_is_ignored_and_indexing_runs_here(
    tmp_path: Path, embedder: Embedder, no_settings: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    docs, index_dir = one_doc_index(tmp_path, embedder)
    stale_socket(index_dir / SOCKET_NAME)  # a bot was killed
    (index_dir / SECRET_NAME).write_text("left-behind")
    (docs / "lunch.md").write_text(LUNCH)
    no_settings.setenv("QWENBOT_INDEX_DIR", str(index_dir))
    no_settings.setenv("QWENBOT_DOCS_DIR", str(docs))
    assert cli.main(["--env-file", os.devnull, "index", "--no-progress"]) == 0
    out, err = capsys.readouterr()
    assert "1 added" in out and "running bot" not in err


def test_slash_reindex_runs_the_job_for_admins_only(
    make_bot: Callable[..., Bot], tmp_path: Path, embedder: Embedder
) -> None:
    docs, index_dir = one_doc_index(tmp_path, embedder)
    bot = make_bot(index_dir=index_dir, docs_dir=docs, admin_users=["U0ADMIN"], index_on_start=False)
    (docs / "lunch.md").write_text(LUNCH)

    refused = post_form(
        bot.url, command_form("reindex", user="U0ALICE", channel=GENERAL, response_url=bot.slack.response_url("a"))
    )
    assert refused.status == 200 and json.loads(refused.body)["text"] == NOT_AN_ADMIN
    bot.wait_idle()
    assert bot.runtime.index_info().documents == 1

    started = post_form(
        bot.url, command_form("reindex", user="U0ADMIN", channel=GENERAL, response_url=bot.slack.response_url("b"))
    )
    assert started.status == 200 and started.seconds < 3
    [reply] = bot.slack.wait_for(lambda s: s.calls_to("response_url"))
    assert reply.args["response_type"] == "ephemeral"
    assert reply.args["text"].startswith(":white_check_mark: Indexed.") and "1 added" in reply.args["text"]
    assert bot.runtime.index_info().documents == 2
    [hit] = bot.runtime.searcher.search("when is lunch served", k=1)
    assert hit.path == "lunch.md" and hit.lexical_score is not None  # BM25 has it too, with no wait


def test_settings_take_only_user_ids_as_admins(no_settings: pytest.MonkeyPatch) -> None:
    no_settings.setenv("QWENBOT_ADMIN_USERS", "U0ADMIN, W0OTHER1")
    assert load_settings(None).admin_users == ["U0ADMIN", "W0OTHER1"]
    no_settings.setenv("QWENBOT_ADMIN_USERS", "@alice")
    with pytest.raises(SettingsError, match="QWENBOT_ADMIN_USERS: '@alice' is not a Slack user id"):
        load_settings(None)


def test_watching_the_docs_folder_indexes_changes_within_seconds(
    make_bot: Callable[..., Bot], tmp_path: Path, embedder: Embedder, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.indexing")
    docs, index_dir = one_doc_index(tmp_path, embedder)
    bot = make_bot(index_dir=index_dir, docs_dir=docs, watch_docs=True, index_on_start=False)
    wait_until(lambda: "watching" in caplog.text, "the watcher to start")
    (docs / "lunch.md").write_text(LUNCH)
    wait_until(lambda: bot.runtime.index_info().documents == 2, "lunch.md to be indexed", timeout=30)
    (docs / "lunch.md").write_text(LUNCH.replace("noon", "half past twelve"))
    # no schedule runs here (reindex_interval_minutes is 0): only the watcher can index the edit
    wait_until(
        lambda: "half past twelve" in bot.runtime.searcher.search("when is lunch served", k=1)[0].text,
        "the edit to be indexed",
        timeout=60,
    )


def connect_when_taken(conn: socket.socket, path: Path) -> None:
    """Connects, waiting while the listen backlog is full (a Unix socket then refuses with EAGAIN)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            conn.connect(str(path))
            return
        except BlockingIOError:
            assert time.monotonic() < deadline, "the bot stopped taking connections"
            time.sleep(0.01)


@pytest.mark.slow
def test_idle_connections_get_no_thread_each_and_a_request_still_goes_through(
    next_to: BotProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    def threads() -> int:
        return len(os.listdir(f"/proc/{next_to.bot.proc.pid}/task"))

    before = threads()
    idle: list[socket.socket] = []
    try:
        for _ in range(300):  # connected, and then silent
            conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            idle.append(conn)
            conn.settimeout(30)
            connect_when_taken(conn, next_to.index_dir / SOCKET_NAME)
        # before: 300 more threads, each waiting for its connection's request line
        assert threads() - before < 20, (before, threads())
        (next_to.docs / "canteen.md").write_text(LUNCH.replace("Lunch", "The canteen"))
        assert cli.main(["--env-file", next_to.env_file, "index", str(next_to.docs / "canteen.md")]) == 0
        assert "this run: 1 file: 1 added" in capsys.readouterr().out
        idle[-1].settimeout(60)
        assert idle[-1].recv(1) == b""  # an idle connection is closed by the bot after a while
    finally:
        for conn in idle:
            conn.close()


@pytest.mark.slow
def test_a_terminal_with_other_settings_than_the_bot_is_told_to_restart_it(
    next_to: BotProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The docs folder moved and .env says so, but the bot still runs with the folder it started with."""
    moved = tmp_path / "moved-docs"
    shutil.copytree(next_to.docs, moved)
    monkeypatch.setenv("QWENBOT_DOCS_DIR", str(moved))
    pid = next_to.bot.proc.pid
    differs = f"QWENBOT_DOCS_DIR is {next_to.docs.resolve()} there, {moved.resolve()} here"

    def said(err: str) -> list[str]:
        return [line for line in err.splitlines() if f"the running bot (pid {pid}) runs with other settings" in line]

    for argv in (["index"], ["index", str(moved / "parking.md")]):  # nothing is handed to the bot
        assert cli.main(["--env-file", next_to.env_file, *argv]) == 1
        out, err = capsys.readouterr()
        [line] = said(err)
        assert line.startswith("qwenbot index: ") and differs in line and "restart the bot" in line, line
        assert "outside" not in out + err and "no such folder" not in out + err
    assert cli.main(["--env-file", next_to.env_file, "index", "--list"]) == 0
    [line] = said(capsys.readouterr().err)
    assert line.startswith("qwenbot: warning: ") and differs in line
    next_to.llm.push(answer(["Visitors park in lot B [1]."]))
    assert cli.main(["--env-file", next_to.env_file, "ask", "where do visitors park?"]) == 0
    [line] = said(capsys.readouterr().err)
    cli.main(["--env-file", next_to.env_file, "doctor"])
    [row] = [line for line in capsys.readouterr().out.splitlines() if line[6:].startswith("running bot")]
    assert row.startswith("FAIL") and differs in row, row

"""The control channel where its socket cannot sit in the index folder (a deep index path: AF_UNIX
paths stop at 108 bytes), and a terminal whose settings differ from the running bot's."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.fake_openai import FakeOpenAI, answer
from support.fake_slack import FakeSlack
from support.processes import Running, running_bot

from bot import cli
from bot.indexing.control import POINTER_NAME, SECRET_NAME, SOCKET_NAME, ControlServer
from retrieval.config import IndexConfig
from retrieval.embeddings import Embedder
from retrieval.indexer import Indexer

pytestmark = pytest.mark.slow  # `qwenbot run --http` processes

PARKING = "# Parking\n\nVisitors park in lot B, behind the office.\n"
LUNCH = "# Lunch\n\nLunch is served at noon on Fridays in the atrium.\n"
AF_UNIX_MAX = 108  # bytes in sockaddr_un.sun_path on Linux, the terminating NUL included


def deep(folder: Path) -> Path:
    """A folder whose control.sock path is longer than AF_UNIX allows."""
    path = folder.joinpath(*["a-folder-with-a-rather-long-name"] * 3, "index")
    assert len(os.fsencode(path / SOCKET_NAME)) > AF_UNIX_MAX
    return path


@dataclass
class DeepBot:
    bot: Running
    llm: FakeOpenAI
    docs: Path
    index_dir: Path


@pytest.fixture(scope="module")
def deep_bot(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[DeepBot]:
    """`qwenbot run --http` on a local index folder at a deep path."""
    tmp = tmp_path_factory.mktemp("deep")
    docs = tmp / "docs"
    docs.mkdir()
    (docs / "parking.md").write_text(PARKING)
    index_dir = deep(tmp)
    Indexer(IndexConfig(index_dir=index_dir), embedder).run([docs], progress=False)
    with (
        FakeSlack() as slack,
        FakeOpenAI() as llm,
        running_bot(slack, llm, index_dir, tmp, QWENBOT_DOCS_DIR=str(docs)) as bot,
    ):
        yield DeepBot(bot, llm, docs, index_dir)


@pytest.fixture
def terminal(deep_bot: DeepBot, no_settings: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """This process as an admin's shell beside the bot: the same settings, in another folder."""
    no_settings.setenv("QWENBOT_INDEX_DIR", str(deep_bot.index_dir))
    no_settings.setenv("QWENBOT_DOCS_DIR", str(deep_bot.docs))
    no_settings.setenv("QWENBOT_LLM_BASE_URL", deep_bot.llm.url)
    no_settings.setenv("QWENBOT_LLM_RETRIES", "0")
    return no_settings


def test_a_bot_on_a_deep_index_path_takes_index_and_ask_requests(
    deep_bot: DeepBot, terminal: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (deep_bot.docs / "lunch.md").write_text(LUNCH)
    assert cli.main(["--env-file", os.devnull, "index", str(deep_bot.docs / "lunch.md")]) == 0, capsys.readouterr()
    out, err = capsys.readouterr()
    assert "the running bot (pid" in err and "this run: 1 file: 1 added" in out, (out, err)
    deep_bot.llm.push(answer(["Lunch is at noon [1]."]))
    assert cli.main(["--env-file", os.devnull, "ask", "when is lunch served?"]) == 0
    assert "lunch.md" in capsys.readouterr().out
    # the socket lives in a private folder of its own, found through a pointer only its owner reads
    pointer = deep_bot.index_dir / POINTER_NAME
    assert stat.S_IMODE(pointer.stat().st_mode) == 0o600
    sock = Path(pointer.read_text().strip())
    assert len(os.fsencode(sock)) < AF_UNIX_MAX and stat.S_ISSOCK(sock.stat().st_mode)
    assert stat.S_IMODE(sock.parent.stat().st_mode) == 0o700
    assert not any("control socket" in line for line in deep_bot.bot.log), deep_bot.bot.log


def test_a_short_socket_folder_is_removed_at_close_and_a_killed_bots_at_the_next_start(tmp_path: Path) -> None:
    index_dir = deep(tmp_path)
    index_dir.mkdir(parents=True)
    serving = "import sys, time; from pathlib import Path; from bot.indexing.control import ControlServer; "
    serving += "print(ControlServer(Path(sys.argv[1]), {}).socket_path, flush=True); time.sleep(600)"
    with subprocess.Popen([sys.executable, "-c", serving, str(index_dir)], stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        left_behind = Path(proc.stdout.readline().strip()).parent
        proc.kill()  # kill -9: socket, secret, pointer and folder stay behind
    assert left_behind.is_dir() and (index_dir / POINTER_NAME).exists()
    server = ControlServer(index_dir, {})
    assert not left_behind.exists()
    folder = server.socket_path.parent
    server.close()
    assert not folder.exists()
    assert not any((index_dir / name).exists() for name in (POINTER_NAME, SECRET_NAME, SOCKET_NAME))

"""The bot in a process of its own (`qwenbot run --http`, as a container runs it), reading a child's
output as it comes, and waiting for a condition with a deadline."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from support.fake_openai import FakeOpenAI
from support.fake_slack import BOT_TOKEN, SIGNING_SECRET, FakeSlack
from support.paths import CORPUS_DIR, REPO


def wait_until(condition: Callable[[], object], what: str, timeout: float = 60) -> None:
    """Polls `condition()` until it is truthy; fails naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


class OutputLines:
    """A child's output, read line by line on a thread, so a test can wait for a line to appear."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: list[str] = []
        self.ended = False
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._reader.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self.ended = True
            self._changed.notify_all()

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        """The first match of `pattern` in a line; fails if the stream ends (the child exited) or on timeout."""

        def found() -> re.Match[str] | None:
            return next((m for line in self.lines if (m := re.search(pattern, line))), None)

        with self._changed:
            self._changed.wait_for(lambda: found() or self.ended, timeout)
            match = found()
            assert match, f"no line matching {pattern!r} ({'exited' if self.ended else 'timed out'}):\n" + "".join(
                self.lines
            )
            return match

    def all(self, timeout: float) -> str:
        """Everything, once the stream has ended."""
        self._reader.join(timeout)
        assert not self._reader.is_alive(), "the output never ended"
        return "".join(self.lines)


@dataclass
class Running:
    proc: subprocess.Popen[str]
    url: str  # its Events API endpoint
    log: list[str]


@contextmanager
def running_bot(slack: FakeSlack, llm: FakeOpenAI, index_dir: Path, tmp_path: Path, **env: str) -> Iterator[Running]:
    """`qwenbot run --http` in its own process, as a container runs it; killed if a test leaves it."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("QWENBOT_", "SLACK_"))}
    environ.update(
        {
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "QWENBOT_SLACK_API_URL": slack.api_url,
            "QWENBOT_LLM_BASE_URL": llm.url,
            "QWENBOT_LLM_RETRIES": "0",
            "QWENBOT_INDEX_DIR": str(index_dir),
            "QWENBOT_DOCS_DIR": str(CORPUS_DIR),
            "QWENBOT_STATE_DB": str(tmp_path / "state.sqlite3"),
            "QWENBOT_RATE_LIMIT_PER_MINUTE": "0",
            "QWENBOT_INDEX_ON_START": "false",
            **env,
        }
    )
    command = [sys.executable, "-m", "bot.cli", "--env-file", os.devnull, "run", "--http"]
    command += ["--host", "127.0.0.1", "--port", "0"]
    proc = subprocess.Popen(command, cwd=REPO, env=environ, stderr=subprocess.PIPE, text=True)
    log: list[str] = []
    stderr = proc.stderr
    assert stderr is not None
    threading.Thread(target=lambda: log.extend(iter(stderr.readline, "")), daemon=True).start()
    try:
        deadline = time.monotonic() + 120
        port = None
        while port is None:
            assert proc.poll() is None and time.monotonic() < deadline, "".join(log)
            port = next(
                (m.group(1) for line in log if (m := re.search(r"Events API on http://[\d.]+:(\d+)/", line))), None
            )
            time.sleep(0.1)
        yield Running(proc, f"http://127.0.0.1:{port}/slack/events", log)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

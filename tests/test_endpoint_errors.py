"""One clear line for every mistake with the model endpoint and the Slack tokens (issue 10, part 4).

Each model endpoint mistake is made for real: a server that refuses the key (401, 403), one that does
not serve the model (404), a web page where the API should be, a host name that does not resolve
(`.invalid`), a port where nothing listens, a server too slow to reply. `qwenbot doctor`, `qwenbot ask`
and `/qwenbot status` must each say the same thing about it, and never show the key. The Slack tokens
are checked against the fake Slack's `apps.connections.open` and its Socket Mode websocket, with
`qwenbot run` in its own process, as an admin starts it.
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.cli import rows
from support.fake_openai import FakeOpenAI, Responder, answer, closed_port_url, error, slow
from support.fake_slack import APP_TOKEN, BOT_TOKEN, FakeSlack, FakeSocketMode
from support.paths import CORPUS_DIR
from support.slack_bot import Bot

from bot.cli import main as cli
from bot.commands.ask import EXIT_MODEL_FAILED
from bot.commands.run import APP_TOKEN_FIX
from bot.llm.client import LLMClient
from bot.llm.errors import LLMError
from bot.settings import load_settings

QUESTION = "How many days of paid vacation do I get?"
RIGHT_KEY = "sk-right-key-0123"
WRONG_KEY = "sk-wrong-key-never-shown-4567"
REVOKED_APP_TOKEN = "xapp-1-revoked-token-never-shown"
BASE_URL_FIX = "point QWENBOT_LLM_BASE_URL at the server's OpenAI-compatible API root (it usually ends in /v1)"
CONNECTED = "connected to Slack over Socket Mode"


@dataclass(frozen=True)
class Mistake:
    """A misconfigured endpoint, and what every surface must say about it."""

    name: str
    kind: str
    problem: str  # {where}: the server's host:port; {request}: the request it answered wrongly
    fix: str
    server: Callable[[], FakeOpenAI] | None = None
    url: str = ""  # when no server runs: the URL to use ("closed": a port where nothing listens)
    chat: tuple[Responder, ...] = ()  # what the server answers chat requests with
    read_timeout: str = "60"
    key: str = WRONG_KEY  # QWENBOT_LLM_API_KEY ("": not set)

    def line(self, where: str, request: str) -> str:
        return f"{self.problem.format(where=where, request=request)}: {self.fix}"


MISTAKES = [
    Mistake(
        "key refused 401",
        "auth",
        "the server refused the key (HTTP 401)",
        "check QWENBOT_LLM_API_KEY",
        lambda: FakeOpenAI(api_key=RIGHT_KEY),
    ),
    Mistake(
        "no key 401",
        "auth",
        "the server needs an API key (HTTP 401) and QWENBOT_LLM_API_KEY is not set",
        "set QWENBOT_LLM_API_KEY to the server's key",
        lambda: FakeOpenAI(api_key=RIGHT_KEY),
        key="",
    ),
    Mistake(
        "key refused 403",
        "auth",
        "the server refused the key (HTTP 403)",
        "check QWENBOT_LLM_API_KEY",
        lambda: FakeOpenAI(api_key=RIGHT_KEY, key_status=403),
    ),
    Mistake(
        "model not served 404",
        "model_not_served",
        "model 'Qwen/Qwen3-8B' is not served at {where} (served: qwen3:8b, qwen3:32b)",
        "set QWENBOT_LLM_MODEL to a served model id",
        lambda: FakeOpenAI(models=["qwen3:8b", "qwen3:32b"]),
        chat=(error(404, message="The model `Qwen/Qwen3-8B` does not exist."),),  # as vLLM answers
    ),
    Mistake(
        "web page 200",
        "not_openai",
        "{where} is not an OpenAI-compatible API: it answered {request} with an HTML page (HTTP 200)",
        BASE_URL_FIX,
        lambda: FakeOpenAI(html_status=200),
    ),
    Mistake(
        "web page 404",
        "not_openai",
        "{where} is not an OpenAI-compatible API: it answered {request} with an HTML page (HTTP 404)",
        BASE_URL_FIX,
        lambda: FakeOpenAI(html_status=404),
    ),
    Mistake(
        "unresolvable host",
        "dns",
        "connection failed: cannot resolve host qwen-gpu.invalid",
        "check the host name in QWENBOT_LLM_BASE_URL (and this machine's DNS)",
        url="http://qwen-gpu.invalid:8000/v1",
    ),
    Mistake(
        "refused port",
        "refused",
        "connection failed: nothing listens on {where} (connection refused)",
        "start the model server, or fix the port in QWENBOT_LLM_BASE_URL",
        url="closed",
    ),
]
# Only chat requests are slow (the model list comes at once), so `/qwenbot status` has nothing to say.
SLOW = Mistake(
    "no reply in time",
    "timeout",
    "timed out: no reply from {where} within 0.5s (QWENBOT_LLM_READ_TIMEOUT)",
    "the server may be overloaded or still loading the model",
    FakeOpenAI,
    chat=(slow(10, answer("too late")),) * 2,
    read_timeout="0.5",
)
RETRIED = ("dns", "refused", "timeout")  # kinds worth another try: `ask` says how many it made


@dataclass
class Endpoint:
    url: str
    where: str  # host:port, as the messages name it


@contextmanager
def endpoint(mistake: Mistake) -> Iterator[Endpoint]:
    if mistake.server is None:
        url = closed_port_url() if mistake.url == "closed" else mistake.url
        yield Endpoint(url, urllib.parse.urlsplit(url).netloc)
        return
    with mistake.server() as server:
        server.push(*mistake.chat)
        yield Endpoint(server.url, urllib.parse.urlsplit(server.url).netloc)


def _ids(mistake: Mistake) -> str:
    return mistake.name.replace(" ", "-")


@pytest.mark.parametrize("mistake", [*MISTAKES, SLOW], ids=_ids)
def test_the_client_diagnoses_each_mistake_once(mistake: Mistake) -> None:
    with endpoint(mistake) as ep:
        settings = load_settings(
            None, llm_base_url=ep.url, llm_api_key=mistake.key, llm_read_timeout=float(mistake.read_timeout)
        )
        with pytest.raises(LLMError) as caught:
            LLMClient(settings.llm_config()).ping()
    assert caught.value.kind == mistake.kind
    assert str(caught.value) == mistake.line(ep.where, "POST /v1/chat/completions")
    assert WRONG_KEY not in str(caught.value)


@pytest.mark.parametrize("mistake", [*MISTAKES, SLOW], ids=_ids)
def test_doctor_names_the_mistake_and_its_fix(
    mistake: Mistake,
    env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with endpoint(mistake) as ep:
        env.setenv("QWENBOT_LLM_BASE_URL", ep.url)
        env.setenv("QWENBOT_LLM_API_KEY", mistake.key)
        env.setenv("QWENBOT_LLM_READ_TIMEOUT", mistake.read_timeout)
        code = cli(["doctor"])
    output = capsys.readouterr().out
    assert code == 1
    failed = {"model_not_served": "LLM model", "timeout": "LLM ping"}.get(mistake.kind, "LLM endpoint")
    assert rows(output)[failed] == "FAIL"
    lines = output.splitlines()
    [at] = [i for i, line in enumerate(lines) if line.startswith(f"FAIL  {failed:<16}")]
    assert lines[at].endswith("  " + mistake.problem.format(where=ep.where, request="GET /v1/models"))
    assert lines[at + 1].strip() == f"fix: {mistake.fix}"
    assert WRONG_KEY not in output


@pytest.mark.parametrize("mistake", [*MISTAKES, SLOW], ids=_ids)
def test_ask_names_the_mistake_quotes_the_docs_and_exits_3(
    mistake: Mistake,
    env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with endpoint(mistake) as ep:
        env.setenv("QWENBOT_LLM_BASE_URL", ep.url)
        env.setenv("QWENBOT_LLM_API_KEY", mistake.key)
        env.setenv("QWENBOT_LLM_READ_TIMEOUT", mistake.read_timeout)
        code = cli(["ask", QUESTION])
    out, err = capsys.readouterr()
    assert code == EXIT_MODEL_FAILED == 3
    assert out.startswith("**Model unavailable**") and "hr/vacation.md" in out
    tries = "model unavailable after 1 attempt: " if mistake.kind in RETRIED else ""
    [line] = [line for line in err.splitlines() if line.startswith("qwenbot ask:")]
    assert line == (
        "qwenbot ask: model failed, quoted the docs instead: "
        + tries
        + mistake.line(ep.where, "POST /v1/chat/completions")
    )
    assert WRONG_KEY not in out + err


@pytest.mark.parametrize("mistake", MISTAKES, ids=_ids)
def test_status_names_the_mistake(mistake: Mistake, make_bot: Callable[..., Bot]) -> None:
    with endpoint(mistake) as ep:
        bot = make_bot(llm_base_url=ep.url, llm_api_key=mistake.key)
        ok, line = bot.runtime.model_health()
        report = bot.runtime.status_report()
    assert not ok
    assert line == f"`Qwen/Qwen3-8B` at `{ep.where}`: " + mistake.line(ep.where, "GET /v1/models")
    assert f"• Model: {line}" in report and ":x: degraded" in report
    assert WRONG_KEY not in report


# --- Slack tokens ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "outcome", "slack_says"),
    [
        (APP_TOKEN, "PASS", ""),
        (REVOKED_APP_TOKEN, "FAIL", "invalid_auth"),
        (BOT_TOKEN, "FAIL", "not_allowed_token_type"),
    ],
    ids=["app-token", "revoked", "bot-token-instead"],
)
def test_doctor_checks_the_app_level_token(
    token: str,
    outcome: str,
    slack_says: str,
    env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with FakeSlack() as slack:
        slack.ws_url = "wss://wss-primary.invalid/link/?ticket=never-used"  # doctor must not connect
        env.setenv("QWENBOT_SLACK_API_URL", slack.api_url)
        env.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
        env.setenv("SLACK_APP_TOKEN", token)
        cli(["doctor"])
        [call] = slack.calls_to("apps.connections.open", ok_only=False)
    output = capsys.readouterr().out
    assert call.token == token
    assert rows(output)["Slack app token"] == outcome and rows(output)["Slack"] == "PASS"
    if slack_says:
        assert f"apps.connections.open failed: {slack_says}" in output and f"fix: {APP_TOKEN_FIX}" in output
    else:
        assert "Socket Mode can connect" in output
    assert token not in output


def test_doctor_skips_the_app_token_when_unset(
    env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cli(["doctor"])
    assert rows(capsys.readouterr().out)["Slack app token"] == "SKIP"


@pytest.fixture(scope="module")
def run_index(corpus_index: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the corpus index for `qwenbot run` processes: the bot locks its index."""
    index = tmp_path_factory.mktemp("run") / "index"
    shutil.copytree(corpus_index, index, ignore=shutil.ignore_patterns(".lock"))
    return index


def run_environ(tmp_path: Path, index: Path, slack: FakeSlack, **settings: str) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("QWENBOT_", "SLACK_"))}
    environ.update(
        QWENBOT_INDEX_DIR=str(index),
        QWENBOT_DOCS_DIR=str(CORPUS_DIR),
        QWENBOT_STATE_DB=str(tmp_path / "state.sqlite3"),
        QWENBOT_SLACK_API_URL=slack.api_url,
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_APP_TOKEN=APP_TOKEN,
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        ANONYMIZED_TELEMETRY="False",
        QWENBOT_INDEX_ON_START="false",
    )
    environ.update(settings)
    return environ


QWENBOT_RUN = [sys.executable, "-m", "bot.cli", "run"]


@pytest.mark.slow
def test_run_with_a_rejected_app_token_says_so_in_one_line(tmp_path: Path, run_index: Path) -> None:
    with FakeSlack() as slack:
        environ = run_environ(
            tmp_path, run_index, slack, SLACK_APP_TOKEN=REVOKED_APP_TOKEN, QWENBOT_LOG_LEVEL="WARNING"
        )
        done = subprocess.run(QWENBOT_RUN, cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=120)
        [call] = slack.calls_to("apps.connections.open", ok_only=False)
    assert call.token == REVOKED_APP_TOKEN
    assert done.returncode == 1
    assert done.stderr.splitlines() == [f"qwenbot run: Slack refused SLACK_APP_TOKEN (invalid_auth): {APP_TOKEN_FIX}"]
    assert REVOKED_APP_TOKEN not in done.stderr + done.stdout


@pytest.mark.slow
def test_run_says_connected_only_once_slack_said_hello(tmp_path: Path, run_index: Path) -> None:
    with FakeSlack() as slack, FakeSocketMode() as socket_mode:
        slack.ws_url = socket_mode.url
        proc = subprocess.Popen(
            QWENBOT_RUN,
            cwd=tmp_path,
            env=run_environ(tmp_path, run_index, slack),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            lines = _stderr_lines(proc)
            _wait_for_line(lines, CONNECTED, timeout=120)
            socket_mode.wait_connected(timeout=1)  # the fake said hello on it before the line came
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=60) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert [c.token for c in slack.calls_to("apps.connections.open")] == [APP_TOKEN]  # one URL, not two


@pytest.mark.slow
def test_run_without_a_hello_exits_with_one_line_and_never_says_connected(tmp_path: Path, run_index: Path) -> None:
    with FakeSlack() as slack, FakeSocketMode(hello=False) as silent:
        slack.ws_url = silent.url
        environ = run_environ(tmp_path, run_index, slack, QWENBOT_SLACK_CONNECT_TIMEOUT="1")
        done = subprocess.run(QWENBOT_RUN, cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=120)
        silent.wait_connected(timeout=1)  # the websocket opened; the connection was still not up
    assert done.returncode == 1
    assert CONNECTED not in done.stderr and "Traceback" not in done.stderr  # logged at INFO, were it said
    assert [line for line in done.stderr.splitlines() if line.startswith("qwenbot run:")] == [
        "qwenbot run: no Socket Mode connection to 127.0.0.1 within 1s (QWENBOT_SLACK_CONNECT_TIMEOUT): "
        "check that this machine can open websockets (wss, port 443) to Slack"
    ]


def _stderr_lines(proc: subprocess.Popen[str]) -> queue.Queue[str | None]:
    """The process's stderr, line by line (None at its end), read by a thread so the pipe never fills."""
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, name="run-stderr", daemon=True).start()
    return lines


def _wait_for_line(lines: queue.Queue[str | None], text: str, timeout: float) -> None:
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError(f"no {text!r} within {timeout}s:\n{''.join(seen)}") from None
        if line is None:
            raise AssertionError(f"qwenbot run ended before {text!r}:\n{''.join(seen)}")
        seen.append(line)
        if text in line:
            return

"""`qwenbot ask` and `qwenbot doctor` against the real index, a scripted model server and a fake Slack."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support.cli import rows
from support.fake_openai import FakeOpenAI, answer, closed_port_url, error
from support.fake_slack import BOT_TOKEN, SIGNING_SECRET, FakeSlack

from bot.cli import main as cli

QUESTION = "How many days of paid vacation do I get?"


def ask_in_its_own_process(corpus_index: Path, tmp_path: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    """`qwenbot ask QUESTION` as a newcomer runs it: its own process, where nothing set up logging."""
    index = tmp_path / "index"
    shutil.copytree(corpus_index, index, ignore=shutil.ignore_patterns(".lock"))  # its own copy: no lock clash
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("QWENBOT_", "SLACK_"))}
    environ.update(
        QWENBOT_INDEX_DIR=str(index),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        ANONYMIZED_TELEMETRY="False",
        **settings,
    )
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", "ask", QUESTION],
        cwd=tmp_path,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_ask_command_streams_the_answer_then_the_sources(corpus_index: Path, tmp_path: Path) -> None:
    with FakeOpenAI() as server:
        server.push(answer(["You get ", "25 days of paid vacation [1]", " per year."]))
        done = ask_in_its_own_process(
            corpus_index, tmp_path, QWENBOT_LLM_BASE_URL=server.url, QWENBOT_LLM_PROVIDER="sglang"
        )
    assert done.returncode == 0, done.stderr
    text, _, sources = done.stdout.partition("\n\nSources:\n")
    assert text == "You get 25 days of paid vacation [1] per year."
    assert sources.splitlines()[0].startswith("  [1] Vacation") and "hr/vacation.md" in sources
    assert "[Searching the docs…]" in done.stderr and "documents…]" in done.stderr


def test_ask_json_without_endpoint_is_extractive_and_scoped(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(["ask", QUESTION, "--json", "--path", "hr/"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == {"text", "mode", "sources", "usage", "timings", "model_error"}
    assert result["mode"] == "extractive" and result["text"].startswith("**Model unavailable**")
    assert result["sources"] and all(s["path"].startswith("hr/") for s in result["sources"])
    assert {"n", "title", "path", "heading_path", "url", "updated", "excerpt"} <= set(result["sources"][0])
    assert result["timings"]["total"] >= result["timings"]["search"] > 0


def test_ask_json_reports_usage_from_the_model(env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    with FakeOpenAI() as server:
        server.push(answer("25 days [1].", usage=(812, 6)))
        env.setenv("QWENBOT_LLM_BASE_URL", server.url)
        assert cli(["ask", QUESTION, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["mode"], result["text"]) == ("generated", "25 days [1].")
    assert result["usage"] == {"prompt_tokens": 812, "completion_tokens": 6}
    assert [s["n"] for s in result["sources"]] == [1]


def test_ask_exit_status_tells_a_script_whether_the_model_answered(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """0: answered, or "not in the docs" (the bot worked); 3: the configured model failed mid-answer."""
    with FakeOpenAI() as server:
        env.setenv("QWENBOT_LLM_BASE_URL", server.url)
        assert cli(["ask", "What is the airspeed velocity of an unladen swallow?", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["mode"] == "not_found" and not server.bodies
        server.push(answer(["You get 25 days [1]", " per year.", " never sent"], cut_after=2))
        assert cli(["ask", QUESTION]) == 3
    out, err = capsys.readouterr()
    assert out.startswith("You get 25 days [1] per year.") and "cut short" in out
    [line] = [line for line in err.splitlines() if line.startswith("qwenbot ask:")]
    assert line.startswith("qwenbot ask: model failed, the answer was cut short: stream broke after partial output")


def test_ask_without_an_index_says_to_index_first(
    env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env.setenv("QWENBOT_INDEX_DIR", str(tmp_path / "nothing-here"))
    assert cli(["ask", QUESTION]) == 1
    assert "run `qwenbot index`" in capsys.readouterr().err
    assert not (tmp_path / "nothing-here").exists()


def test_doctor_passes_on_a_working_setup(env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    with FakeOpenAI(models=["Qwen/Qwen3-8B"]) as server, FakeSlack() as slack:
        server.push(answer("O"), answer("O"))
        env.setenv("QWENBOT_LLM_BASE_URL", server.url)
        env.setenv("QWENBOT_LLM_PROVIDER", "dashscope")
        env.setenv("QWENBOT_SLACK_API_URL", slack.api_url)
        env.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
        env.setenv("SLACK_SIGNING_SECRET", SIGNING_SECRET)
        code = cli(["doctor"])
        thinking = [body["enable_thinking"] for body in server.bodies]
        assert [c.method for c in slack.calls] == ["auth.test"]
    output = capsys.readouterr().out
    assert code == 0, output
    assert rows(output) == {
        "settings": "PASS",
        "index": "PASS",
        "index model": "PASS",
        "embedding model": "PASS",
        "LLM model": "PASS",
        "LLM ping": "PASS",
        "thinking switch": "PASS",
        "Slack": "PASS",
        "Slack app token": "SKIP",  # --http setups have none
        "sources": "SKIP",  # no QWENBOT_SOURCES_FILE
    }
    assert thinking == [False, True]  # the ping as configured, then the switch flipped
    assert "All checks passed." in output and BOT_TOKEN not in output


def test_doctor_reports_each_failure_with_a_fix(
    env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeSlack() as slack:
        env.setenv("QWENBOT_INDEX_DIR", str(tmp_path / "missing"))
        env.setenv("QWENBOT_LLM_BASE_URL", closed_port_url())
        env.setenv("QWENBOT_SLACK_API_URL", slack.api_url)
        env.setenv("SLACK_BOT_TOKEN", "xoxb-wrong-token")
        env.setenv("QWENBOT_SYSTEM_PROMPT_FILE", str(tmp_path / "no-such-prompt.txt"))
        code = cli(["doctor"])
    output = capsys.readouterr().out
    assert code == 1
    assert rows(output) == {
        "settings": "FAIL",
        "index": "FAIL",
        "embedding model": "PASS",
        "LLM endpoint": "FAIL",
        "Slack": "FAIL",
        "Slack app token": "SKIP",
        "sources": "SKIP",
    }
    assert output.count("fix: ") == 4
    assert "run `qwenbot index`" in output and "invalid_auth" in output and "QWENBOT_LLM_BASE_URL" in output
    assert "xoxb-wrong-token" not in output


def test_doctor_flags_a_rejected_thinking_switch_and_an_unserved_model(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:

    with FakeOpenAI(models=["qwen3:8b"]) as server:
        env.setenv("QWENBOT_LLM_BASE_URL", server.url)
        env.setenv("QWENBOT_LLM_PROVIDER", "vllm")
        server.push(
            error(404, message="The model `Qwen/Qwen3-8B` does not exist."),  # as vLLM answers an unknown name
            error(400, message="unrecognized field: chat_template_kwargs"),
        )
        assert cli(["doctor"]) == 1
        output = capsys.readouterr().out
        checks = rows(output)
        assert (checks["LLM model"], checks["LLM ping"], checks["thinking switch"], checks["Slack"]) == (
            "FAIL",
            "FAIL",
            "FAIL",
            "SKIP",
        )
        assert "'Qwen/Qwen3-8B' is not served" in output and "served: qwen3:8b" in output
        assert "set QWENBOT_LLM_MODEL to a served model id" in output and "set QWENBOT_LLM_PROVIDER" in output
        # a server that answers under the configured name anyway (llama.cpp answers any): a warning only
        server.push(answer("O"), answer("O"))
        assert cli(["doctor"]) == 0
    output = capsys.readouterr().out
    assert (rows(output)["LLM model"], rows(output)["LLM ping"]) == ("WARN", "PASS")
    assert "'Qwen/Qwen3-8B' is not in the server's list (qwen3:8b), but the server answers under that name" in output


@pytest.mark.slow
def test_ask_in_a_terminal_tells_a_model_failure_once(corpus_index: Path, tmp_path: Path) -> None:
    """The pipeline's warning must not repeat the command's own line."""
    done = ask_in_its_own_process(
        corpus_index, tmp_path, QWENBOT_LLM_BASE_URL=closed_port_url(), QWENBOT_LLM_RETRIES="0"
    )
    assert done.returncode == 3, done.stderr
    [line] = [line for line in done.stderr.splitlines() if "nothing listens" in line]
    assert line.startswith("qwenbot ask: model failed, quoted the docs instead: ")

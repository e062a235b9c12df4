"""The MCP `answer` tool runs the bot's whole pipeline (abstain, prompt, model, citations): against the
scripted model server, and against a real one (llama.cpp)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from support import llama
from support.fake_openai import FakeOpenAI, answer
from support.mcp import result, server_env, stdio_session

pytestmark = pytest.mark.slow  # the command starts: the embedding model and the index load

VACATION = "how many vacation days do we get per year?"


def ask(env: dict[str, str], cwd: Path, *questions: str) -> list[Any]:
    async def run() -> list[Any]:
        async with stdio_session(env, cwd) as session:
            return [result(await session.call_tool("answer", {"question": q})) for q in questions]

    return anyio.run(run)


def test_answer_with_the_scripted_model(corpus_index: Path, tmp_path: Path) -> None:
    with FakeOpenAI() as model:
        model.push(answer(["You get 25 days ", "of paid vacation a year [1]."]))
        env = server_env(corpus_index, llm_base_url=model.url, llm_retries="0")
        generated, not_found = ask(env, tmp_path, VACATION, "what is the airspeed of an unladen swallow?")
        prompt = model.bodies[0]["messages"]
    assert generated["mode"] == "generated" and generated["model_error"] is None
    assert generated["text"] == "You get 25 days of paid vacation a year [1]."
    assert generated["sources"][0] == {
        "n": 1,
        "key": "hr/vacation.md",
        "title": "Vacation and Paid Time Off",
        "heading_path": generated["sources"][0]["heading_path"],
        "url": "https://wiki.northwind.example/hr/vacation",
        "updated": "2026-02-03",
        "archived": False,
    }
    assert "25 days of paid vacation" in " ".join(m["content"] for m in prompt)  # the passages reached the model
    assert not_found["mode"] == "not_found" and len(model.bodies) == 1  # abstained: the model was not asked


def test_answer_with_llama_cpp(corpus_index: Path, tmp_path: Path) -> None:
    with llama.llama_server(tmp_path) as url:
        settings = {"llm_base_url": url, "llm_provider": "llamacpp", "llm_model": llama.MODEL_NAME}
        settings |= {"llm_context_window": str(llama.CONTEXT_WINDOW), "llm_max_tokens": "24", "top_k": "2"}
        settings |= {"llm_read_timeout": "60", "llm_total_timeout": "120"}
        [got] = ask(server_env(corpus_index, **settings), tmp_path, VACATION)
    assert got["mode"] == "generated", got["model_error"]
    assert got["text"].strip()  # a 270M model answers poorly: the path is what is tested, not the quality
    assert all(s["n"] >= 1 for s in got["sources"])

"""A model that fails is a failure, not a gap in the docs (issue 19, item 7), and an answer cut by the
output token limit is never shown as complete (issue 21, item 7). Real HTTP all the way: the scripted
model server (tests/support/fake_openai.py) answers 500s, 429s, a cut stream, a stall, or stops at the length
limit, under the real pipeline over tests/fixtures/small_docs and, end to end, the Slack bot."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.fake_openai import FakeOpenAI, Responder, answer, error, slow
from support.slack_bot import GENERAL, Bot

from bot.answer.pipeline import LENGTH_NOTE, AnswerPipeline
from bot.answer.records import Answer, Delta, Done
from bot.llm.client import build_client
from bot.settings import Settings, load_settings
from bot.slack.render.tasks import STEP_WRITE, outcome_status
from retrieval.config import IndexConfig
from retrieval.embeddings import Embedder
from retrieval.search import Searcher

ANSWERED = "how many vacation days do I get?"  # its section answers it: quoted when the model fails
UNCLEAR = "how do I restore a database backup?"  # the model is asked, but no passage clearly answers it
MISSING = "what is the dress code?"  # nothing near: "not in the docs", the model is not asked
NOT_FOUND_TEXT = "couldn't find this in the documentation"

# Each way a model fails, as the scripted server plays it (two tries: QWENBOT_LLM_RETRIES=1).
FAILURES: dict[str, tuple[Responder, ...]] = {
    "500": (error(500), error(503)),
    "429": (error(429, retry_after=0), error(429, retry_after=0)),
    "cut stream": (answer(["never", " shown"], cut_after=0),) * 2,
    "stall": (slow(30, answer("too late")),) * 2,
}


@pytest.fixture(scope="module")
def searcher(small_index: Path, embedder: Embedder) -> Iterator[Searcher]:
    with Searcher(IndexConfig(index_dir=small_index), embedder) as s:
        yield s


def settings_for(small_index: Path, url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "index_dir": small_index,
        "llm_base_url": url,
        "llm_retries": 1,
        "llm_total_timeout": 3.0,
        "llm_read_timeout": 1.0,
        "llm_connect_timeout": 1.0,
    }
    return load_settings(None, **{**values, **overrides})


def run(settings: Settings, searcher: Searcher, question: str) -> Answer:
    pipeline = AnswerPipeline(settings.answer_config(), searcher, build_client(settings.llm_config()))
    events = list(pipeline.run(question, []))
    assert isinstance(events[-1], Done)
    assert "".join(e.text for e in events if isinstance(e, Delta)) == events[-1].answer.text
    return events[-1].answer


@pytest.mark.parametrize("failure", FAILURES, ids=list(FAILURES))
def test_a_failing_model_quotes_the_passage_that_answers_and_says_the_model_failed(
    failure: str,
    small_index: Path,
    searcher: Searcher,
) -> None:
    with FakeOpenAI() as server:
        server.push(*FAILURES[failure])
        result = run(settings_for(small_index, server.url), searcher, ANSWERED)
        assert server.bodies  # the model was asked
    assert result.mode == "extractive" and result.model_error
    assert result.text.startswith("**Model unavailable**")
    assert "27 vacation days per calendar year" in result.text and NOT_FOUND_TEXT not in result.text
    assert result.cited == ["hr/vacation.md"]


@pytest.mark.parametrize("failure", FAILURES, ids=list(FAILURES))
def test_a_failing_model_with_no_clear_passage_is_a_failure_not_a_gap(
    failure: str,
    small_index: Path,
    searcher: Searcher,
) -> None:
    with FakeOpenAI() as server:
        server.push(*FAILURES[failure])
        result = run(settings_for(small_index, server.url), searcher, UNCLEAR)
        assert server.bodies
    assert result.mode == "failed" and result.model_error
    assert NOT_FOUND_TEXT not in result.text and "model" in result.text.lower()
    assert result.sources and result.cited == []  # the closest documents are listed, none is cited


def test_an_answer_cut_at_the_output_limit_says_so(small_index: Path, searcher: Searcher) -> None:
    with FakeOpenAI() as server:
        server.push(answer(["Full-time employees get 27 vacation days [1] per", " calendar"], finish="length"))
        result = run(settings_for(small_index, server.url, llm_max_tokens=64), searcher, ANSWERED)
    assert result.mode == "generated" and result.truncated
    assert result.text.startswith("Full-time employees get 27 vacation days [1] per calendar")
    assert result.text.endswith(LENGTH_NOTE)
    assert "QWENBOT_LLM_MAX_TOKENS is 64" in (result.model_error or "")
    assert outcome_status(result) == "error"


def test_reasoning_that_uses_up_the_output_limit_is_a_model_failure(
    small_index: Path,
    searcher: Searcher,
) -> None:
    with FakeOpenAI() as server:
        server.push(answer([], reasoning=["let me think", " at length"], finish="length"))
        result = run(settings_for(small_index, server.url, llm_thinking=True), searcher, ANSWERED)
    assert result.mode == "extractive" and "QWENBOT_LLM_MAX_TOKENS" in (result.model_error or "")
    assert "27 vacation days" in result.text


# --- end to end: the Slack bot, its state and metrics -------------------------------------------


def test_in_slack_a_model_outage_is_reported_as_a_failure_and_kept_out_of_the_gap_report(
    make_bot: Callable[..., Bot],
    small_index: Path,
) -> None:
    bot = make_bot(index_dir=small_index)
    bot.llm.push(error(500), error(500))  # QWENBOT_LLM_RETRIES=0 in make_bot: one try per question
    ts, _ = bot.ask(ANSWERED)
    [quoted] = bot.answer_in(GENERAL, ts)
    ts, _ = bot.ask(UNCLEAR)
    [failed] = bot.answer_in(GENERAL, ts)
    ts, _ = bot.ask(MISSING)
    [missing] = bot.answer_in(GENERAL, ts)
    bot.wait_idle()
    assert len(bot.llm.bodies) == 2  # the model was asked twice; "not in the docs" needs no model

    assert quoted.text.startswith("**Model unavailable**") and "27 vacation days" in quoted.text
    assert NOT_FOUND_TEXT not in failed.text and "model" in failed.text.lower()
    assert failed.tasks[STEP_WRITE]["status"] == "error"
    assert failed.blocks[1]["text"]["text"].startswith("*Closest documents*")
    assert missing.text.startswith("I couldn't find this in the documentation")

    gaps = bot.runtime.state.gaps.unanswered(0, time.time() + 1, "all")
    assert [q.text for q in gaps] == [MISSING]  # the outage's questions are no gap in the docs
    count = bot.runtime.metrics.registry.get_sample_value
    assert count("qwenbot_questions_total", {"mode": "failed"}) == 1
    assert count("qwenbot_questions_total", {"mode": "extractive"}) == 1
    assert count("qwenbot_questions_total", {"mode": "not_found"}) == 1
    assert count("qwenbot_model_errors_total", {"kind": "server"}) == 2


def test_in_slack_an_answer_cut_at_the_output_limit_is_not_shown_as_complete(
    make_bot: Callable[..., Bot],
    small_index: Path,
) -> None:
    bot = make_bot(index_dir=small_index)
    bot.llm.push(answer(["Full-time employees get ", "27 vacation days [1] per"], finish="length"))
    ts, _ = bot.ask(ANSWERED)
    [message] = bot.answer_in(GENERAL, ts)
    assert "27 vacation days [1] per" in message.text and LENGTH_NOTE in message.text
    step = message.tasks[STEP_WRITE]
    assert step["status"] == "error" and "complete" not in step.get("details", "")
    assert "length limit" in step["details"]
    count = bot.runtime.metrics.registry.get_sample_value
    assert count("qwenbot_model_errors_total", {"kind": "length"}) == 1

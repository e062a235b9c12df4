"""The answer pipeline with real retrieval over docs_corpus/ and a scripted model server over HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.fake_openai import FakeOpenAI, answer, closed_port_url, error

from bot.answer.citations import CitationFilter, cited_sources, clean_citations
from bot.answer.pipeline import AnswerPipeline
from bot.answer.prompts import DEFAULT_SYSTEM_PROMPT, build_prompt, estimate_tokens, prompt_budget
from bot.answer.records import Answer, Delta, Done, PipelineEvent, Source, Status, Turn
from bot.errors import ConfigError
from bot.llm.client import build_client
from bot.settings import Settings, load_settings
from retrieval.config import IndexConfig
from retrieval.embeddings import Embedder
from retrieval.models import SearchFilter
from retrieval.search import Searcher

VACATION_Q = "How many days of paid vacation do I get?"


@pytest.fixture(scope="module")
def searcher(corpus_index: Path, embedder: Embedder) -> Iterator[Searcher]:
    with Searcher(IndexConfig(index_dir=corpus_index), embedder) as s:
        yield s


def settings_for(index_dir: Path, url: str | None, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "index_dir": index_dir,
        "llm_base_url": url,
        "llm_retries": 1,
        "llm_total_timeout": 5.0,
        "llm_read_timeout": 2.0,
        "llm_connect_timeout": 1.0,
    }
    values.update(overrides)
    return load_settings(None, **values)


def run(
    settings: Settings,
    searcher: Searcher,
    question: str,
    history: list[Turn] | None = None,
    scope: SearchFilter | None = None,
) -> tuple[list[PipelineEvent], Answer]:
    pipeline = AnswerPipeline(settings.answer_config(), searcher, build_client(settings.llm_config()))
    events = list(pipeline.run(question, history or [], scope))
    assert isinstance(events[-1], Done) and not any(isinstance(e, Done) for e in events[:-1])
    answer = events[-1].answer
    # What streamed is exactly the final text, whatever the mode.
    assert "".join(e.text for e in events if isinstance(e, Delta)) == answer.text
    return events, answer


def prompt_of(server: FakeOpenAI) -> str:
    return server.bodies[-1]["messages"][-1]["content"]


def test_generated_answer_streams_with_only_the_cited_sources(corpus_index: Path, searcher: Searcher) -> None:
    with FakeOpenAI() as server:
        server.push(answer(["You get 25 days", " a year [1]", ". See also [", "2][9]."], usage=(900, 12)))
        events, result = run(settings_for(corpus_index, server.url), searcher, VACATION_Q)
        prompt = prompt_of(server)
        system = server.bodies[-1]["messages"][0]
    assert [type(e) for e in events[:2]] == [Status, Status]
    reading = events[1]
    assert events[0] == Status("searching") and isinstance(reading, Status)
    assert reading.stage == "reading" and reading.documents >= 1
    assert result.mode == "generated" and result.model_error is None
    assert result.text == "You get 25 days a year [1]. See also [2]."  # [9] has no source: removed
    assert [s.n for s in result.sources] == [1, 2]
    assert result.sources[0].path == "hr/vacation.md"
    assert result.usage.prompt_tokens == 900 and result.usage.completion_tokens == 12
    assert {"search", "first_token", "total"} <= result.timings.keys()
    # The prompt numbers documents with title and path, best first, and ends with the question.
    assert system == {"role": "system", "content": DEFAULT_SYSTEM_PROMPT}
    assert prompt.startswith("Sources:\n\n[1] ") and "(hr/vacation.md" in prompt.split("\n[2] ")[0]
    assert prompt.endswith(f"Question: {VACATION_Q}")


def test_unrelated_question_abstains_without_calling_the_model(corpus_index: Path, searcher: Searcher) -> None:
    with FakeOpenAI() as server:
        events, result = run(
            settings_for(corpus_index, server.url), searcher, "What is the melting point of tungsten in kelvin?"
        )
        assert server.requests == []
    assert result.mode == "not_found"
    assert "couldn't find" in result.text
    assert 1 <= len(result.sources) <= 3 and len({s.path for s in result.sources}) == len(result.sources)


def test_abstain_coverage_is_a_setting(corpus_index: Path, searcher: Searcher) -> None:
    # Keyword and dense search rank different documents first for this one: coverage decides.
    question = "can a tier 2 service page me at 3am"
    with FakeOpenAI() as server:
        server.push(answer("Tier 2 services page during business hours only [1]."))
        _, result = run(settings_for(corpus_index, server.url), searcher, question)
        assert result.mode == "generated"
        _, result = run(settings_for(corpus_index, server.url, abstain_min_coverage=0.9), searcher, question)
        assert result.mode == "not_found" and len(server.bodies) == 1


def test_without_a_model_weak_evidence_is_not_quoted(corpus_index: Path, searcher: Searcher) -> None:
    # Nothing covers parking: the Contractors Policy must not be quoted as if it were the answer.
    _, result = run(settings_for(corpus_index, None), searcher, "where do staff park?")
    assert result.mode == "not_found" and "couldn't find" in result.text
    assert result.sources and "QWENBOT_LLM_BASE_URL" in (result.model_error or "")


@pytest.mark.parametrize("pieces", [["NOT_", "IN_DOCS"], ["Sorry, ", "NOT_IN_DOCS", " - the sources cover leave."]])
def test_model_saying_not_in_docs_gives_the_not_found_reply(
    corpus_index: Path, searcher: Searcher, pieces: list[str]
) -> None:
    with FakeOpenAI() as server:
        server.push(answer(pieces))
        events, result = run(settings_for(corpus_index, server.url), searcher, VACATION_Q)
        assert "NOT_IN_DOCS" in server.bodies[0]["messages"][0]["content"]  # the system prompt asks for it
    assert result.mode == "not_found" and "NOT_IN_DOCS" not in result.text
    assert result.text.startswith("I couldn't find this") and result.sources
    assert [e.text for e in events if isinstance(e, Delta)] == [result.text]  # nothing of the model's shown


def test_marker_after_an_answer_is_dropped(corpus_index: Path, searcher: Searcher) -> None:
    text = "You get 25 days of paid vacation a year [1], booked in Workday two weeks ahead."
    with FakeOpenAI() as server:
        server.push(answer([text[:30], text[30:], " NOT_IN", "_DOCS"]))
        _, result = run(settings_for(corpus_index, server.url), searcher, VACATION_Q)
    assert result.mode == "generated" and result.text == text


def test_no_endpoint_gives_labelled_extractive_answer(corpus_index: Path, searcher: Searcher) -> None:
    _, result = run(settings_for(corpus_index, None), searcher, VACATION_Q)
    assert result.mode == "extractive"
    assert result.text.startswith("**Model unavailable**")
    assert "QWENBOT_LLM_BASE_URL" in (result.model_error or "")
    assert result.sources and result.sources[0].path == "hr/vacation.md"
    # Every quoted passage cites a listed source.
    assert set(range(1, len(result.sources) + 1)) == {s.n for s in cited_sources(result.text, result.sources)}
    assert "> " in result.text


def test_unreachable_endpoint_falls_back_within_the_budget(corpus_index: Path, searcher: Searcher) -> None:
    start = time.monotonic()
    _, result = run(settings_for(corpus_index, closed_port_url(), llm_total_timeout=3.0), searcher, VACATION_Q)
    assert time.monotonic() - start < 30  # search and the 3 s model budget, with room for a busy machine
    assert result.mode == "extractive" and "connection failed" in (result.model_error or "")


def test_server_that_keeps_failing_falls_back(corpus_index: Path, searcher: Searcher) -> None:
    with FakeOpenAI() as server:
        server.push(error(503), error(500))
        _, result = run(settings_for(corpus_index, server.url), searcher, VACATION_Q)
        assert len(server.bodies) == 2
    assert result.mode == "extractive" and "HTTP 500" in (result.model_error or "")


def test_empty_model_answer_falls_back(corpus_index: Path, searcher: Searcher) -> None:
    with FakeOpenAI() as server:
        server.push(answer(["", "  "]))
        _, result = run(settings_for(corpus_index, server.url), searcher, VACATION_Q)
    assert result.mode == "extractive" and "empty" in (result.model_error or "")


def test_stream_cut_midway_keeps_the_text_once_and_says_so(corpus_index: Path, searcher: Searcher) -> None:
    with FakeOpenAI() as server:
        server.push(answer(["You get 25 days [1]", " per year.", " More"], cut_after=2), answer("DUPLICATE"))
        _, result = run(settings_for(corpus_index, server.url), searcher, VACATION_Q)
        assert len(server.bodies) == 1
    assert result.mode == "generated" and result.model_error
    assert result.text.startswith("You get 25 days [1] per year.\n\n_(The answer was cut short")
    assert "DUPLICATE" not in result.text
    assert [s.n for s in result.sources] == [1]


def test_reasoning_drives_a_thinking_status_and_stays_out(corpus_index: Path, searcher: Searcher) -> None:
    with FakeOpenAI() as server:
        server.push(answer(["<think>the user asks", " about leave</think>", "25 days [1]."], reasoning=["hmm", "..."]))
        events, result = run(settings_for(corpus_index, server.url, llm_thinking=True), searcher, VACATION_Q)
    stages = [e.stage for e in events if isinstance(e, Status)]
    assert stages == ["searching", "reading", "thinking"]
    first_delta = next(i for i, e in enumerate(events) if isinstance(e, Delta))
    assert events.index(Status("thinking")) < first_delta
    assert result.text == "25 days [1]."


def test_follow_up_is_searched_with_the_thread(corpus_index: Path, searcher: Searcher) -> None:
    history = [Turn("user", VACATION_Q), Turn("assistant", "You get 25 days a year [1].")]
    # (what is searched for which kind of follow-up: tests/test_followup.py)
    with FakeOpenAI() as server:
        server.push(answer("Contractors follow their contract [1]."))
        run(settings_for(corpus_index, server.url), searcher, "and for contractors?", history)
        messages = server.bodies[-1]["messages"]
    # The thread goes to the model too, without the old citation numbers.
    assert messages[1:3] == [
        {"role": "user", "content": VACATION_Q},
        {"role": "assistant", "content": "You get 25 days a year."},
    ]
    sources = messages[-1]["content"]
    assert "hr/contractors-policy.md" in sources and "hr/vacation.md" in sources


def test_scope_limits_the_sources(corpus_index: Path, searcher: Searcher) -> None:
    _, result = run(
        settings_for(corpus_index, None),
        searcher,
        "How do I set up the VPN?",
        scope=SearchFilter(path_prefixes=("it-security/",)),
    )
    assert result.sources and all(s.path.startswith("it-security/") for s in result.sources)
    _, result = run(
        settings_for(corpus_index, None), searcher, VACATION_Q, scope=SearchFilter(path_prefixes=("product/",))
    )
    assert all(s.path.startswith("product/") for s in result.sources)


def test_prompt_fits_the_token_budget_best_chunks_first(corpus_index: Path, searcher: Searcher) -> None:
    hits = searcher.search(VACATION_Q, k=12)
    history = [Turn("user", "x " * 2000), Turn("assistant", "earlier answer [2]"), Turn("user", "hello?")]
    for window in (2048, 4096):
        settings = settings_for(corpus_index, None, llm_context_window=window, llm_max_tokens=512)
        budget = prompt_budget(settings.answer_config())
        prompt = build_prompt(VACATION_Q, hits, history, DEFAULT_SYSTEM_PROMPT, budget)
        assert prompt.tokens <= budget
        assert sum(estimate_tokens(m["content"]) for m in prompt.messages) <= budget
        assert prompt.sources and prompt.sources[0].hits[0] == hits[0]
        assert [s.n for s in prompt.sources] == list(range(1, len(prompt.sources) + 1))
        # A turn too long for the history share is left out with everything before it.
        assert [m["role"] for m in prompt.messages] == ["system", "user", "user"]
    small = build_prompt(VACATION_Q, hits, [], DEFAULT_SYSTEM_PROMPT, 700)
    large = build_prompt(VACATION_Q, hits, [], DEFAULT_SYSTEM_PROMPT, 30000)
    assert sum(len(s.hits) for s in small.sources) < sum(len(s.hits) for s in large.sources) == len(hits)


def test_system_prompt_comes_from_the_configured_file(corpus_index: Path, searcher: Searcher, tmp_path: Path) -> None:
    custom = tmp_path / "prompt.txt"
    custom.write_text("Answer like a pirate, citing [n].\n")
    with FakeOpenAI() as server:
        server.push(answer("Arr, 25 days [1]."))
        run(settings_for(corpus_index, server.url, system_prompt_file=custom), searcher, VACATION_Q)
        assert server.bodies[0]["messages"][0] == {"role": "system", "content": "Answer like a pirate, citing [n]."}
    settings = settings_for(corpus_index, None, system_prompt_file=tmp_path / "missing.txt")
    with pytest.raises(ConfigError, match="QWENBOT_SYSTEM_PROMPT_FILE"):
        AnswerPipeline(settings.answer_config(), searcher, None)


def test_context_window_must_leave_room_for_the_prompt(corpus_index: Path, searcher: Searcher) -> None:
    settings = settings_for(corpus_index, None, llm_context_window=1024, llm_max_tokens=1024)
    with pytest.raises(ConfigError, match="QWENBOT_LLM_CONTEXT_WINDOW"):
        AnswerPipeline(settings.answer_config(), searcher, None)


def test_citation_filter_is_independent_of_chunk_boundaries() -> None:
    text = "A [1]. B [3][2]. C [1, 7] and D [12]. E[4]; see [the docs] [2"
    expected = "A [1]. B [3][2]. C [1] and D. E; see [the docs] [2"
    assert clean_citations(text, 3) == expected
    for i in range(len(text)):
        for j in range(i, len(text), 3):
            f = CitationFilter(3)
            assert f.feed(text[:i]) + f.feed(text[i:j]) + f.feed(text[j:]) + f.flush() == expected


def test_cited_sources_keeps_only_used_numbers_in_source_order() -> None:
    sources = [Source(n, f"T{n}", f"p{n}.md", "") for n in (1, 2, 3, 4)]
    assert [s.n for s in cited_sources("x [3] y [1, 3]", sources)] == [1, 3]
    assert cited_sources("no citations", sources) == []

"""Answers in the asker's language: the prompt tells the model so, and the bot's fixed texts come from
one catalogue (bot/messages.py), chosen by the question's language, English otherwise."""

from __future__ import annotations

import string
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.fake_openai import FakeOpenAI, answer

from bot.answer.pipeline import AnswerPipeline
from bot.answer.records import Answer, Delta, Done, PipelineEvent, Status
from bot.llm.client import build_client
from bot.messages import CATALOGUES, DE, EN, language_of, message
from bot.settings import load_settings
from bot.slack.render.answer import answer_text, trailer_blocks
from bot.slack.render.tasks import outcome_step
from retrieval.config import IndexConfig
from retrieval.embeddings import Embedder
from retrieval.search import Searcher


def fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_every_key_is_in_every_language_with_the_same_placeholders() -> None:
    assert set(CATALOGUES) >= {"en", "de"}
    for lang, catalogue in CATALOGUES.items():
        assert set(catalogue) == set(EN), lang
        for key, text in catalogue.items():
            assert text.strip() and fields(text) == fields(EN[key]), (lang, key)


@pytest.mark.parametrize(
    ("question", "lang"),
    [
        ("Wie viele Urlaubstage bekomme ich im Jahr?", "de"),
        ("¿Cuál es el código de vestimenta?", "es"),
        ("着装要求是什么？", "zh"),
        ("how many vacation days do I get?", "en"),
        ("Qual è il codice di abbigliamento in ufficio?", "en"),  # Italian: no catalogue shipped
        ("Mikä on pukukoodi toimistossa?", "en"),
    ],
)
def test_the_catalogue_follows_the_question_else_english(question: str, lang: str) -> None:
    assert language_of(question) == lang


@pytest.fixture(scope="module")
def searcher(small_index: Path, embedder: Embedder) -> Iterator[Searcher]:
    with Searcher(IndexConfig(index_dir=small_index), embedder) as s:
        yield s


def run(searcher: Searcher, url: str, question: str) -> list[PipelineEvent]:
    settings = load_settings(None, index_dir=searcher.config.index_dir, llm_base_url=url, llm_retries=0)
    pipeline = AnswerPipeline(settings.answer_config(), searcher, build_client(settings.llm_config()))
    return list(pipeline.run(question, []))


def test_the_prompt_tells_the_model_to_answer_in_the_questions_language(searcher: Searcher) -> None:
    with FakeOpenAI() as server:
        server.push(answer("Sie bekommen 27 Urlaubstage [1]."))
        events = run(searcher, server.url, "how many vacation days do I get? (antworte bitte auf Deutsch)")
        [body] = server.bodies
    system = body["messages"][0]
    assert system["role"] == "system"
    assert "Answer in the language of the question, whatever the language of the sources" in system["content"]
    done = events[-1]
    assert isinstance(done, Done) and done.answer.mode == "generated"


def test_a_german_question_gets_german_fixed_texts(searcher: Searcher) -> None:
    with FakeOpenAI() as server:
        events = run(searcher, server.url, "Wie ist die Kleiderordnung im Büro?")
        assert not server.bodies  # nothing near: the model is not asked
    statuses = [e.text for e in events if isinstance(e, Status)]
    assert statuses[0] == DE["status_searching"] and statuses[1].startswith("Lese ")
    done = events[-1]
    assert isinstance(done, Done)
    result = done.answer
    assert result.mode == "not_found" and result.lang == "de"
    assert result.text.startswith(DE["not_found"])
    assert "".join(e.text for e in events if isinstance(e, Delta)) == result.text
    assert outcome_step(result)[0] == "Nicht in der Dokumentation"
    blocks = trailer_blocks(result, 7, stale_days=365, escalate=True)
    shown = str(blocks)
    assert "Hilfreich" in shown and "Nicht hilfreich" in shown and "Noch Hilfe nötig?" in shown
    assert "Helpful" not in shown


def test_a_question_in_a_language_without_a_catalogue_gets_english(searcher: Searcher) -> None:
    with FakeOpenAI() as server:
        events = run(searcher, server.url, "Qual è il codice di abbigliamento in ufficio?")
    done = events[-1]
    assert isinstance(done, Done) and done.answer.lang == "en"
    assert done.answer.text.startswith(EN["not_found"])
    assert [e.text for e in events if isinstance(e, Status)][0] == "Searching the docs…"
    assert answer_text(Answer("", "not_found")) == message("nothing_found")
    assert "'Helpful'" in str(trailer_blocks(done.answer, 7, stale_days=365))

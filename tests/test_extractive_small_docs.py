"""Answers without a model (extractive mode) over a team's first docs folder: tests/fixtures/small_docs,
a dozen documents (Markdown with and without front matter, txt, html, rst, a PDF, an archived page) and
the questions people ask of it (questions.jsonl). With no model, the bot must quote the passage that
answers when one clearly does, only passages of the question's own document, and count only those as
cited: in `qwenbot ask`, in the Slack reply, its log line and what the state stores."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.paths import SMALL_DOCS
from support.slack_bot import GENERAL, Bot, answer_id

from bot.answer.pipeline import AnswerPipeline
from bot.answer.records import Answer, Done
from bot.cli import main as cli
from bot.logs import FIELDS
from bot.settings import load_settings
from retrieval.config import IndexConfig
from retrieval.embeddings import Embedder
from retrieval.evaluation import load_questions
from retrieval.search import Searcher

QUESTIONS = load_questions(SMALL_DOCS / "questions.jsonl")
ANSWERABLE = [q for q in QUESTIONS if q.sources]
UNANSWERABLE = [q for q in QUESTIONS if not q.sources]


@pytest.fixture(scope="module")
def pipeline(small_index: Path, embedder: Embedder) -> Iterator[AnswerPipeline]:
    """The answer pipeline with no model configured (QWENBOT_LLM_BASE_URL unset)."""
    with Searcher(IndexConfig(index_dir=small_index), embedder) as searcher:
        settings = load_settings(None, index_dir=small_index, llm_base_url=None)
        yield AnswerPipeline(settings.answer_config(), searcher, None)


def ask(pipeline: AnswerPipeline, question: str) -> Answer:
    [done] = [e for e in pipeline.run(question, []) if isinstance(e, Done)]
    return done.answer


def test_the_vacation_question_quotes_its_section_and_nothing_else(pipeline: AnswerPipeline) -> None:
    answer = ask(pipeline, "how many vacation days do I get?")
    assert answer.mode == "extractive", answer.text
    assert "> Full-time employees get 27 vacation days per calendar year" in answer.text
    assert "couldn't find" not in answer.text
    assert [s.path for s in answer.sources] == ["hr/vacation.md"]
    assert answer.cited == ["hr/vacation.md"]


@pytest.mark.parametrize(
    ("question", "path", "quoted"),
    [
        ("What is the wifi password for guests?", "offices/berlin.html", "the guest password is sunflower-2026"),
        ("what was the hotel limit in the 2019 travel policy?", "policies/archive/travel-policy-2019.md", "120 euros"),
        ("who is on call for the database?", "engineering/database-oncall.rst", "schedule ``db-primary``"),
        ("how much parental leave do I get?", "hr/parental-leave.md", "20 weeks of parental leave at full pay"),
        ("how do I submit an expense claim?", "finance/expenses.pdf", "in Expensify within 30 days"),
    ],
)
def test_answerable_questions_quote_only_their_own_document(
    pipeline: AnswerPipeline, question: str, path: str, quoted: str
) -> None:
    answer = ask(pipeline, question)
    assert answer.mode == "extractive", answer.text
    assert quoted in " ".join(answer.text.split())
    assert [s.path for s in answer.sources] == [path]  # no vacation, VPN or password passages padding it
    assert answer.sources[0].archived == path.startswith("policies/archive/")


def _quoted_documents(answer: Answer) -> set[str]:
    return {s.path for s in answer.sources} if answer.mode == "extractive" else set()


def test_every_answerable_question_is_answered_from_its_document(pipeline: AnswerPipeline) -> None:
    wrong = {q.question: sorted(_quoted_documents(ask(pipeline, q.question))) for q in ANSWERABLE}
    assert {q: docs for q, docs in wrong.items() if docs != sorted(_sources(q))} == {}


def _sources(question: str) -> tuple[str, ...]:
    return next(q.sources for q in QUESTIONS if q.question == question)


def test_most_unanswerable_questions_are_said_to_be_missing(pipeline: AnswerPipeline) -> None:
    caught = [q.question for q in UNANSWERABLE if ask(pipeline, q.question).mode == "not_found"]
    assert len(caught) >= len(UNANSWERABLE) - 2, set(q.question for q in UNANSWERABLE) - set(caught)
    for question in ("what is the dress code?", "does the company pay for a gym membership?"):
        assert question in caught


def test_qwenbot_ask_without_a_model_answers_from_the_docs(
    env: pytest.MonkeyPatch,
    small_index: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    env.setenv("QWENBOT_INDEX_DIR", str(small_index))
    assert cli(["ask", "how many vacation days do I get?"]) == 0
    out = capsys.readouterr().out
    assert "27 vacation days per calendar year" in out and "couldn't find" not in out
    text, _, sources = out.partition("\nSources:\n")
    assert [line for line in sources.splitlines() if line.strip()] == [
        "  [1] Vacation › Annual allowance (hr/vacation.md, updated 2026-01-12)"
    ]
    assert cli(["ask", "how do I set up the VPN?", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["mode"] == "extractive" and [s["path"] for s in result["sources"]] == ["it/vpn.txt"]


def test_the_slack_answer_its_log_line_and_the_state_count_only_what_is_quoted(
    make_bot: Callable[..., Bot],
    small_index: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:

    bot = make_bot(index_dir=small_index, llm_base_url=None)
    with caplog.at_level(logging.INFO, logger="bot"):
        ts, _ = bot.ask("how do I set up the VPN?")
        [message] = bot.answer_in(GENERAL, ts)
        bot.wait_idle()
    assert "WireGuard" in message.text and "Berlin" not in message.text and "first day" not in message.text
    [line] = [r for r in caplog.records if r.getMessage().startswith("question ")]
    fields = getattr(line, FIELDS)
    assert (fields["mode"], fields["cited"]) == ("extractive", ["it/vpn.txt"])
    sources = "\n".join(b["text"]["text"] for b in message.blocks[1:] if b.get("type") == "section")
    assert "it/vpn.txt" in sources and "berlin" not in sources and "first-day" not in sources
    assert bot.runtime.state.questions.source_paths(answer_id(message)) == ["it/vpn.txt"]  # what the state keeps

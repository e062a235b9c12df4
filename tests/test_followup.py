"""Follow-up questions in a thread: the three rewrite modes over the real index of docs_corpus/, the
model mode against a scripted OpenAI-compatible server (good, slow, failing, garbage), and the Slack
thread read back with the cursor (fake Slack over real HTTP)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from slack_sdk import WebClient
from support.fake_openai import FakeOpenAI, Responder, answer, error, malformed_json, slow
from support.fake_slack import BOT_ID, BOT_TOKEN, BOT_USER, FakeSlack

from bot.answer.followup import QueryRewriter, heuristic_queries, leans_on_thread
from bot.answer.pipeline import AnswerPipeline
from bot.answer.records import Done, Turn
from bot.llm.client import build_client
from bot.settings import Settings, load_settings
from bot.slack.questions import Question
from bot.slack.thread import HISTORY_TURNS, PAGE_SIZE, ThreadHistory
from retrieval.config import IndexConfig
from retrieval.embeddings import Embedder
from retrieval.search import Searcher

VPN_Q = "how do I connect to the VPN from home?"
VPN_THREAD = [
    Turn("user", VPN_Q),
    Turn("assistant", "Install Tailscale from Self Service and log in with Okta SSO. Sources: VPN Guide (Tailscale)"),
]
IPAD_Q = "does it work on my personal ipad?"  # alone, it finds nothing about the VPN


@pytest.fixture(scope="module")
def searcher(corpus_index: Path, embedder: Embedder) -> Iterator[Searcher]:
    with Searcher(IndexConfig(index_dir=corpus_index), embedder) as s:
        yield s


def settings_for(index_dir: Path, url: str | None = None, **overrides: object) -> Settings:
    values: dict[str, object] = {"index_dir": index_dir, "llm_base_url": url, "llm_retries": 0}
    values.update(overrides)
    return load_settings(None, **values)


def pipeline(settings: Settings, searcher: Searcher) -> AnswerPipeline:
    return AnswerPipeline(settings.answer_config(), searcher, build_client(settings.llm_config()))


def paths(pipe: AnswerPipeline, question: str, history: list[Turn]) -> list[str]:
    return [h.path for h in pipe.retrieve(question, history).hits]


def test_off_searches_the_question_alone_and_heuristic_searches_it_with_its_thread(
    corpus_index: Path, searcher: Searcher
) -> None:
    off = pipeline(settings_for(corpus_index, query_rewrite="off"), searcher)
    assert off.retrieve(IPAD_Q, VPN_THREAD).queries == [IPAD_Q]
    assert "it-security/vpn-guide.md" not in paths(off, IPAD_Q, VPN_THREAD)

    heuristic = pipeline(settings_for(corpus_index), searcher)  # the default mode
    queries = heuristic.retrieve(IPAD_Q, VPN_THREAD).queries
    assert queries[0] == f"{VPN_Q} {IPAD_Q}"  # the thread's question carries the topic
    assert "VPN Guide (Tailscale) " + IPAD_Q in queries  # and what the bot cited
    assert paths(heuristic, IPAD_Q, VPN_THREAD)[0] == "it-security/vpn-guide.md"


def test_a_chain_of_follow_ups_keeps_the_turn_that_named_the_topic() -> None:
    history = [*VPN_THREAD, Turn("user", "are those the only steps?"), Turn("assistant", "Also enroll the laptop.")]
    [thread, *_] = heuristic_queries("it says device not authorized", history)
    assert thread.text == f"{VPN_Q} are those the only steps? it says device not authorized"


def test_a_correction_replaces_what_it_corrects() -> None:
    history = [
        Turn("user", "what's the per diem for a trip to Toronto?"),
        Turn("assistant", "$90 a day."),
        Turn("user", "and the hotel cap there?"),
        Turn("assistant", "$225 a night."),
    ]
    [query] = heuristic_queries("no, I meant London, not Toronto", history)
    assert "London" in query.text and "Toronto" not in query.text and "hotel cap" in query.text
    # without "not X": the names the correction does not repeat are what it replaces
    history = [Turn("user", "which days are public holidays in Lisbon?"), Turn("assistant", "Ten days.")]
    [query] = heuristic_queries("no, I meant the Toronto office", history)
    assert "Toronto" in query.text and "Lisbon" not in query.text and "public holidays" in query.text


def test_a_new_topic_in_a_thread_is_searched_on_its_own_too(corpus_index: Path, searcher: Searcher) -> None:
    question = "how often are company laptops replaced?"
    assert not leans_on_thread(question) and leans_on_thread(IPAD_Q) and leans_on_thread("and for contractors?")
    weights = {q.text: q.weight for q in heuristic_queries(question, VPN_THREAD)}
    assert weights[question] == 1.0  # as strong as the thread: the old topic can't drag it back
    assert heuristic_queries(IPAD_Q, VPN_THREAD)[-1].weight < 1.0
    found = paths(pipeline(settings_for(corpus_index), searcher), question, VPN_THREAD)
    assert found[0] == "it-security/laptop-setup.md"


def test_model_mode_fuses_the_models_query_with_the_heuristics(corpus_index: Path, searcher: Searcher) -> None:
    with FakeOpenAI() as server:
        rewritten = answer("Can I use the Tailscale VPN on a personal iPad?")
        server.push(rewritten, rewritten, answer("No [1]."))  # retrieve, then run: rewrite, rewrite, answer
        settings = settings_for(corpus_index, server.url, query_rewrite="model")
        pipe = pipeline(settings, searcher)
        found = pipe.retrieve(IPAD_Q, VPN_THREAD)
        events = list(pipe.run(IPAD_Q, VPN_THREAD))
        rewrite = server.bodies[0]
    assert found.queries[0] == f"{VPN_Q} {IPAD_Q}"
    assert found.queries[-1] == "Can I use the Tailscale VPN on a personal iPad?"
    assert found.hits[0].path == "it-security/vpn-guide.md"
    # one short, non-thinking call that sees the thread
    assert rewrite["max_tokens"] == 64 and rewrite["chat_template_kwargs"]["enable_thinking"] is False
    assert VPN_Q in rewrite["messages"][-1]["content"] and IPAD_Q in rewrite["messages"][-1]["content"]
    assert isinstance(events[-1], Done) and events[-1].answer.mode == "generated"


def test_model_mode_is_skipped_for_a_first_question(corpus_index: Path, searcher: Searcher) -> None:
    with FakeOpenAI() as server:
        pipe = pipeline(settings_for(corpus_index, server.url, query_rewrite="model"), searcher)
        assert pipe.retrieve(VPN_Q, []).queries == [VPN_Q]
        assert server.bodies == []


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(slow(300, answer("too late")), id="hangs"),
        pytest.param(error(500), id="http-500"),
        pytest.param(malformed_json(), id="not-json"),
        pytest.param(answer(""), id="empty"),
        pytest.param(answer("x" * 2000), id="an-essay"),
    ],
)
def test_model_mode_falls_back_to_the_heuristic_and_still_answers(
    corpus_index: Path, searcher: Searcher, failure: Responder
) -> None:
    heuristic = pipeline(settings_for(corpus_index), searcher).retrieve(IPAD_Q, VPN_THREAD)
    with FakeOpenAI() as server:
        server.push(failure, failure, answer("No, personal devices cannot join [1]."))
        settings = settings_for(corpus_index, server.url, query_rewrite="model", query_rewrite_timeout=1.0)
        pipe = pipeline(settings, searcher)
        found = pipe.retrieve(IPAD_Q, VPN_THREAD)
        started = time.monotonic()
        events = list(pipe.run(IPAD_Q, VPN_THREAD))
        elapsed = time.monotonic() - started
        assert len(server.bodies) == 3  # two rewrites, then the answer
    assert found.queries == heuristic.queries and [h.chunk_id for h in found.hits] == [
        h.chunk_id for h in heuristic.hits
    ]
    result = events[-1]
    assert isinstance(result, Done)
    assert result.answer.mode == "generated" and result.answer.text == "No, personal devices cannot join [1]."
    assert [s.path for s in result.answer.sources] == ["it-security/vpn-guide.md"]
    assert elapsed < 30  # a hanging rewrite is given up after its 1 s, not the answer's 90 s budget


def test_model_mode_without_an_endpoint_is_the_heuristic() -> None:
    rewriter = QueryRewriter("model", None)
    assert rewriter.mode == "heuristic"
    assert [q.text for q in rewriter.queries(IPAD_Q, VPN_THREAD)] == [
        q.text for q in heuristic_queries(IPAD_Q, VPN_THREAD)
    ]


# --- the thread, read from Slack ------------------------------------------------------------------


def _question(slack: FakeSlack, channel: str, thread_ts: str, text: str) -> Question:
    ts = slack.add_message(channel, "U0ALICE", text, thread_ts=thread_ts)
    return Question(None, channel, False, "U0ALICE", None, text, ts, thread_ts)


def test_a_long_thread_is_paged_to_the_end_and_keeps_the_newest_turns() -> None:
    channel = "C0GENERAL"
    with FakeSlack() as slack:
        top = slack.add_message(channel, "U0ALICE", "message 0")
        count = 2 * PAGE_SIZE + 32  # three pages
        for n in range(1, count):
            slack.add_message(channel, "U0ALICE", f"message {n}", thread_ts=top)
        q = _question(slack, channel, top, "and the latest?")
        turns = ThreadHistory(WebClient(token=BOT_TOKEN, base_url=slack.api_url)).turns(q)
        calls = slack.calls_to("conversations.replies")
    assert [t.text for t in turns] == [f"message {n}" for n in range(count - HISTORY_TURNS, count)]
    assert len(calls) == 3 and "cursor" not in calls[0].args
    assert calls[1].args["cursor"] and calls[2].args["cursor"] != calls[1].args["cursor"]


def test_the_bots_answers_become_short_turns_with_what_they_cited() -> None:
    channel = "C0GENERAL"
    sources = {
        "type": "section",
        "text": {
            "type": "mrkdwn",
            "text": "*Sources*\n[1] <https://wiki.northwind.example/it/vpn|VPN Guide (Tailscale)> · Install\n"
            "[2] *Laptop Setup Guide* `it-security/laptop-setup.md` · First boot",
        },
    }
    long_answer = "Install Tailscale from Self Service and log in with Okta. " * 20
    with FakeSlack() as slack:
        top = slack.add_message(channel, "U0ALICE", f"<@{BOT_USER}> {VPN_Q}")
        ts = slack.add_message(channel, BOT_USER, long_answer, thread_ts=top, bot_id=BOT_ID)
        slack.messages[(channel, ts)].blocks = [{"type": "markdown", "text": long_answer}, sources]
        q = _question(slack, channel, top, IPAD_Q)
        turns = ThreadHistory(WebClient(token=BOT_TOKEN, base_url=slack.api_url)).turns(q)
    assert turns[0] == Turn("user", VPN_Q)
    bot = turns[1]
    assert bot.role == "assistant" and bot.text.startswith("Install Tailscale") and len(bot.text) < 400
    assert bot.text.endswith("Sources: VPN Guide (Tailscale); Laptop Setup Guide")

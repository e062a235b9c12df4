"""The answer pipeline, Slack-free: question + thread -> search -> grounded prompt -> streamed Answer.

Four outcomes: `generated` (the model answered from the sources), `not_found` (the abstain decision,
bot/answer/abstain.py, found the passages too weak, so the model is not asked; or the model said the
sources don't hold the answer), `extractive` (no model configured, or it kept failing, and a passage
answers clearly: it is quoted and cited, labelled "model unavailable"), `failed` (the configured model
failed and no passage answers clearly enough to quote: a failure, never a gap in the docs). With no
model configured, a question no passage answers clearly is `not_found`: that is the configured mode.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field

from bot.answer.abstain import AbstainRule, Decision, MarkerFilter, decide, passages_to_quote, quotable
from bot.answer.citations import CitationFilter, cited_sources
from bot.answer.fallback import EXTRACTIVE_PASSAGES, extractive_answer, failed_answer, not_found_answer
from bot.answer.followup import Query, QueryRewriter
from bot.answer.prompts import (
    MARGIN_TOKENS,
    build_prompt,
    load_system_prompt,
    prompt_budget,
)
from bot.answer.records import Answer, Delta, Done, PipelineEvent, Source, Status, Turn
from bot.config import AnswerConfig
from bot.errors import ConfigError
from bot.llm.client import LLMClient
from bot.llm.errors import LLMError
from bot.llm.events import Finished, ReasoningDelta, TextDelta, Usage, UsageReport
from bot.messages import language_of
from bot.metrics import Metrics
from retrieval.fusion import fuse_top
from retrieval.models import Hit, SearchFilter
from retrieval.search import SearchService

log = logging.getLogger(__name__)

_MIN_PROMPT_TOKENS = 512
NO_MODEL = "no model endpoint configured (QWENBOT_LLM_BASE_URL is unset)"
# Ends an answer the model stopped at the output token limit (finish_reason "length"): it stops mid-answer.
LENGTH_NOTE = "_(This answer is incomplete: it reached the maximum answer length.)_"


@dataclass(frozen=True)
class Retrieved:
    queries: list[str]  # what was searched for
    hits: list[Hit]  # best first
    decision: Decision  # not answerable: the docs don't seem to hold the answer, so the model is not asked
    ranking: list[Hit]  # everything searched, best first: `hits` and, when asked for (the eval), deeper ones

    @property
    def answerable(self) -> bool:
        return self.decision.answerable


class AnswerPipeline:
    def __init__(
        self, config: AnswerConfig, searcher: SearchService, llm: LLMClient | None, metrics: Metrics | None = None
    ) -> None:
        self.config = config
        self.searcher = searcher
        self.llm = llm
        self.metrics = metrics  # the running bot's: model errors are counted here, where they are known
        self.rewriter = QueryRewriter(config.query_rewrite, llm, config.query_rewrite_timeout)
        self.system_prompt = self.check_config(config)

    @staticmethod
    def check_config(config: AnswerConfig) -> str:
        """Validates what the pipeline needs from the settings; returns the system prompt.

        Raises ConfigError naming the setting to fix.
        """
        if prompt_budget(config) < _MIN_PROMPT_TOKENS:
            raise ConfigError(
                f"QWENBOT_LLM_CONTEXT_WINDOW ({config.llm_context_window}) must exceed QWENBOT_LLM_MAX_TOKENS "
                f"({config.llm_max_tokens}) by at least {_MIN_PROMPT_TOKENS + MARGIN_TOKENS} tokens"
            )
        return load_system_prompt(config)

    def run(
        self, question: str, history: list[Turn], scope: SearchFilter | None = None, found: Retrieved | None = None
    ) -> Iterator[PipelineEvent]:
        """Status events, the answer text as Delta events, then exactly one Done.

        The Delta texts concatenated are exactly `Done.answer.text`. `found`: this question's `retrieve`
        result when the caller already has it (the eval), so it is not searched twice.
        """
        start = time.monotonic()
        lang = language_of(question)
        yield Status("searching", lang=lang)
        if found is None:
            found = self.retrieve(question, history, scope)
        hits = found.hits
        timings = {"search": time.monotonic() - start}
        yield Status(
            "reading",
            documents=len({h.path for h in hits}),
            passages=len(hits),
            found=_documents(hits),
            reranked=bool(self.config.reranker),
            lang=lang,
        )

        if not found.answerable:
            log.info("not in the docs: %s", found.decision.reason)
            answer = not_found_answer(hits, lang)
        elif self.llm is None:
            answer = self._without_model(question, found, NO_MODEL, model_failed=False)
        else:
            answer = yield from self._generate(question, found, history, start)
        if answer.mode != "generated" and answer.text:
            yield Delta(answer.text)
        answer.timings = {**timings, **answer.timings, "total": time.monotonic() - start}
        answer.lang = lang
        yield Done(answer)

    def retrieve(
        self, question: str, history: Sequence[Turn], scope: SearchFilter | None = None, depth: int = 0
    ) -> Retrieved:
        """What the bot finds for a question in its thread, and whether that is enough to answer from.

        The one retrieval path: the Slack bot, `qwenbot ask` and `qwenbot eval` all go through it.
        depth: rank this many passages (the eval's metrics look 10 documents deep); the answer and the
        decision still use only the first QWENBOT_TOP_K."""
        queries = self.rewriter.queries(question, history)
        ranking = self._search(queries, scope, max(depth, self.config.top_k))
        hits = ranking[: self.config.top_k]
        # The question's own terms must be covered, not the thread's: those found the topic, not the answer.
        decision = self._decide(question, hits)
        return Retrieved([q.text for q in queries], hits, decision, ranking)

    def _rule(self) -> AbstainRule:
        endpoint = self.config.reranker.startswith(("http://", "https://"))
        rerank_min = self.config.abstain_rerank_min_endpoint if endpoint else self.config.abstain_rerank_min_local
        return AbstainRule(self.config.abstain_min_coverage, rerank_min)

    def _decide(self, question: str, hits: Sequence[Hit]) -> Decision:
        return decide(self.searcher.term_idf(question), hits, self._rule())

    def _without_model(self, question: str, found: Retrieved, reason: str, *, model_failed: bool = True) -> Answer:
        """The passages that answer, quoted, when one answers clearly enough to stand without a model.
        Else: "not in the docs" when no model is configured; a failure when the configured one failed."""
        idf = self.searcher.term_idf(question)
        quote = quotable(idf, found.hits, self._rule())
        if quote.answerable:
            return extractive_answer(passages_to_quote(idf, found.hits, EXTRACTIVE_PASSAGES), reason)
        log.info("no model (%s) and %s", reason, quote.reason)
        lang = language_of(question)
        if model_failed:
            return failed_answer(found.hits, reason, lang)
        answer = not_found_answer(found.hits, lang)
        answer.model_error = reason
        return answer

    def _count_model_error(self, kind: str) -> None:
        if self.metrics is not None:
            self.metrics.model_errors.labels(kind).inc()

    def _search(self, queries: list[Query], search_filter: SearchFilter | None, k: int) -> list[Hit]:
        if len(queries) == 1:
            return self.searcher.search(queries[0].text, k=k, filter=search_filter)
        rankings = [self.searcher.search(q.text, k=2 * k, filter=search_filter) for q in queries]
        top = fuse_top(
            [(q.weight, [h.chunk_id for h in r]) for q, r in zip(queries, rankings, strict=True)],
            self.searcher.config.rrf_k,
            k,
        )
        by_id = {h.chunk_id: h for r in reversed(rankings) for h in r}  # the first (thread) query's hit wins
        return [dataclasses.replace(by_id[cid], score=score) for cid, score in top]

    def _generate(
        self, question: str, found: Retrieved, history: Sequence[Turn], start: float
    ) -> Generator[PipelineEvent, None, Answer]:
        assert self.llm is not None
        hits = found.hits
        prompt = build_prompt(question, hits, history, self.system_prompt, prompt_budget(self.config))
        citations = CitationFilter(len(prompt.sources))
        marker = MarkerFilter()  # the model's own "not in the docs"
        lang = language_of(question)
        out = yield from self._stream(prompt.messages, citations, marker, start, lang)
        tail = citations.feed(marker.flush()) + citations.flush()
        if marker.not_found:
            log.info("the model said the sources don't hold the answer")
            return not_found_answer(hits, lang)
        error = out.error
        if error is not None and not error.after_output:
            return self._without_model(question, found, str(error))
        if error is None and not "".join(out.parts + [tail]).strip():
            kind = "length" if out.finish == "length" else "empty"
            self._count_model_error(kind)
            why = self._length_error("before any answer") if kind == "length" else "the model returned an empty answer"
            return self._without_model(question, found, why)
        truncated = error is None and out.finish == "length"
        if error is not None:
            tail += f"\n\n_(The answer was cut short: {error}.)_"
        elif truncated:
            self._count_model_error("length")
            log.warning("answer cut: %s", self._length_error("mid-answer"))
            tail += f"\n\n{LENGTH_NOTE}"
        if tail:
            out.timings.setdefault("first_token", time.monotonic() - start)  # a short answer is all held back
            out.parts.append(tail)
            yield Delta(tail)
        text = "".join(out.parts)
        sources = cited_sources(text, [s.to_source() for s in prompt.sources])
        return Answer(
            text=text,
            mode="generated",
            sources=sources,
            usage=out.usage,
            timings=out.timings,
            model_error=str(error) if error else self._length_error("mid-answer") if truncated else None,
            truncated=truncated,
        )

    def _stream(
        self,
        messages: list[dict[str, str]],
        citations: CitationFilter,
        marker: MarkerFilter,
        start: float,
        lang: str,
    ) -> Generator[PipelineEvent, None, _Streamed]:
        """The model's answer text as Delta events (citations checked, the marker held back)."""
        assert self.llm is not None
        out = _Streamed()
        thinking = False
        try:
            for event in self.llm.stream(messages):
                if isinstance(event, ReasoningDelta) and not thinking:
                    thinking = True
                    yield Status("thinking", lang=lang)
                elif isinstance(event, TextDelta):
                    text = citations.feed(marker.feed(event.text))
                    if text:
                        out.timings.setdefault("first_token", time.monotonic() - start)
                        out.parts.append(text)
                        yield Delta(text)
                elif isinstance(event, UsageReport):
                    out.usage = event.usage
                elif isinstance(event, Finished):
                    out.finish = event.reason
        except LLMError as exc:
            log.warning("model call failed: %s", exc)
            out.error = exc
            self._count_model_error(exc.kind)
        return out

    def _length_error(self, when: str) -> str:
        return f"the model reached the output limit {when} (QWENBOT_LLM_MAX_TOKENS is {self.config.llm_max_tokens})"


@dataclass
class _Streamed:
    """What one streamed model call gave."""

    parts: list[str] = field(default_factory=list)  # the answer text shown so far
    usage: Usage = field(default_factory=Usage)
    timings: dict[str, float] = field(default_factory=dict)
    finish: str | None = None  # the server's finish_reason
    error: LLMError | None = None


def _documents(hits: Sequence[Hit]) -> tuple[Source, ...]:
    """One entry per document, in the order of its best passage."""
    seen: dict[str, Source] = {}
    for hit in hits:
        if hit.path not in seen:
            seen[hit.path] = Source(len(seen) + 1, hit.title, hit.path, hit.heading_path, hit.url, hit.updated)
    return tuple(seen.values())

"""The answer pipeline, Slack-free: question + thread -> search -> grounded prompt -> streamed Answer.

Three outcomes: `generated` (the model answered from the sources), `not_found` (retrieval found
nothing relevant enough, so the model is not asked), `extractive` (no model configured, or it kept
failing: the best passages quoted and cited, labelled "model unavailable").
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass

from bot.answer.citations import CitationFilter, cited_sources
from bot.answer.fallback import extractive_answer, not_found_answer
from bot.answer.followup import retrieval_queries
from bot.answer.prompts import (
    MARGIN_TOKENS,
    build_prompt,
    load_system_prompt,
    prompt_budget,
)
from bot.answer.records import Answer, Delta, Done, PipelineEvent, Status, Turn, Usage
from bot.errors import ConfigError
from bot.llm import LLMClient, LLMError, ReasoningDelta, TextDelta, UsageReport
from bot.settings import Settings
from retrieval.fusion import fuse_top
from retrieval.models import Hit, SearchFilter
from retrieval.search import Searcher

log = logging.getLogger(__name__)

_MIN_PROMPT_TOKENS = 512


@dataclass(frozen=True)
class Retrieved:
    queries: list[str]  # what was searched for
    hits: list[Hit]  # best first
    answerable: bool  # False: the docs don't seem to hold the answer, so the model is not asked


class AnswerPipeline:
    def __init__(self, settings: Settings, searcher: Searcher, llm: LLMClient | None) -> None:
        self.settings = settings
        self.searcher = searcher
        self.llm = llm
        self.system_prompt = self.check_settings(settings)

    @staticmethod
    def check_settings(settings: Settings) -> str:
        """Validates what the pipeline needs from the settings; returns the system prompt.

        Raises ConfigError naming the setting to fix.
        """
        if prompt_budget(settings) < _MIN_PROMPT_TOKENS:
            raise ConfigError(
                f"QWENBOT_LLM_CONTEXT_WINDOW ({settings.llm_context_window}) must exceed QWENBOT_LLM_MAX_TOKENS "
                f"({settings.llm_max_tokens}) by at least {_MIN_PROMPT_TOKENS + MARGIN_TOKENS} tokens"
            )
        return load_system_prompt(settings)

    def run(self, question: str, history: list[Turn], scope: SearchFilter | None = None) -> Iterator[PipelineEvent]:
        """Status events, the answer text as Delta events, then exactly one Done.

        The Delta texts concatenated are exactly `Done.answer.text`.
        """
        start = time.monotonic()
        yield Status("searching")
        found = self.retrieve(question, history, scope)
        hits = found.hits
        timings = {"search": time.monotonic() - start}
        yield Status("reading", documents=len({h.path for h in hits}))

        if not found.answerable:
            answer = not_found_answer(hits)
        elif self.llm is None:
            answer = extractive_answer(hits, "no model endpoint configured (QWENBOT_LLM_BASE_URL is unset)")
        else:
            answer = yield from self._generate(question, hits, history, start)
        if answer.mode != "generated" and answer.text:
            yield Delta(answer.text)
        answer.timings = {**timings, **answer.timings, "total": time.monotonic() - start}
        yield Done(answer)

    def retrieve(self, question: str, history: Sequence[Turn], scope: SearchFilter | None = None) -> Retrieved:
        """What the bot finds for a question in its thread, and whether that is enough to answer from.

        The one retrieval path: the Slack bot, `qwenbot ask` and `qwenbot eval` all go through it."""
        queries = retrieval_queries(question, history)
        hits = self._search(queries, scope)
        return Retrieved(queries, hits, answerable=self._answerable(hits))

    def _answerable(self, hits: Sequence[Hit]) -> bool:
        best = max((h.dense_score for h in hits if h.dense_score is not None), default=None)
        return best is not None and best >= self.settings.abstain_threshold

    def _search(self, queries: list[str], search_filter: SearchFilter | None) -> list[Hit]:
        k = self.settings.top_k
        if len(queries) == 1:
            return self.searcher.search(queries[0], k=k, filter=search_filter)
        rankings = [self.searcher.search(q, k=2 * k, filter=search_filter) for q in queries]
        top = fuse_top([(1.0, [h.chunk_id for h in r]) for r in rankings], self.searcher.config.rrf_k, k)
        by_id = {h.chunk_id: h for r in reversed(rankings) for h in r}  # the fuller query's hit wins
        return [dataclasses.replace(by_id[cid], score=score) for cid, score in top]

    def _generate(
        self, question: str, hits: list[Hit], history: Sequence[Turn], start: float
    ) -> Generator[PipelineEvent, None, Answer]:
        assert self.llm is not None
        prompt = build_prompt(question, hits, history, self.system_prompt, prompt_budget(self.settings))
        citations = CitationFilter(len(prompt.sources))
        parts: list[str] = []
        usage = Usage()
        timings: dict[str, float] = {}
        thinking = False
        error: LLMError | None = None
        try:
            for event in self.llm.stream(prompt.messages):
                if isinstance(event, ReasoningDelta) and not thinking:
                    thinking = True
                    yield Status("thinking")
                elif isinstance(event, TextDelta):
                    text = citations.feed(event.text)
                    if text:
                        timings.setdefault("first_token", time.monotonic() - start)
                        parts.append(text)
                        yield Delta(text)
                elif isinstance(event, UsageReport):
                    usage = event.usage
        except LLMError as exc:
            log.warning("model call failed: %s", exc)
            error = exc
        tail = citations.flush()
        if error is not None and not error.after_output:
            return extractive_answer(hits, str(error))
        if error is None and not "".join(parts + [tail]).strip():
            return extractive_answer(hits, "the model returned an empty answer")
        if error is not None:
            tail += f"\n\n_(The answer was cut short: {error}.)_"
        if tail:
            parts.append(tail)
            yield Delta(tail)
        text = "".join(parts)
        sources = cited_sources(text, [s.to_source() for s in prompt.sources])
        return Answer(
            text=text,
            mode="generated",
            sources=sources,
            usage=usage,
            timings=timings,
            model_error=str(error) if error else None,
        )

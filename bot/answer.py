"""The answer pipeline, Slack-free: question + thread -> search -> grounded prompt -> streamed Answer.

Three outcomes: `generated` (the model answered from the sources), `not_found` (retrieval found
nothing relevant enough, so the model is not asked), `extractive` (no model configured, or it kept
failing: the best passages quoted and cited, labelled "model unavailable").
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
from collections.abc import Iterator, Sequence

from bot.citations import CitationFilter, cited_sources
from bot.llm import LLMClient, LLMError, ReasoningDelta, TextDelta, UsageReport
from bot.prompts import (
    MARGIN_TOKENS,
    build_prompt,
    excerpt,
    load_system_prompt,
    number_by_document,
    prompt_budget,
)
from bot.records import Answer, Delta, Done, PipelineEvent, Scope, Status, Turn, Usage
from bot.settings import Settings
from retrieval.models import Hit, SearchFilter
from retrieval.search import Searcher, fuse

log = logging.getLogger(__name__)

_MIN_PROMPT_TOKENS = 512
_EXTRACTIVE_PASSAGES = 3
_EXTRACTIVE_CHARS = 600
_NEAREST_DOCS = 3

# A question that leans on the thread: short, opening with a connective, or pointing back with a
# pronoun ("and for contractors?", "does that apply to them?"). It is searched twice, together with the
# previous question (which names what it refers to) and alone (its new aspect), and the two rankings
# are fused, so neither the thread's topic nor the new aspect crowds out the other.
_FOLLOW_UP_MAX_WORDS = 6
_OPENERS = ("and ", "but ", "also ", "or ", "so ", "what about ", "how about ")
_REFERRING = {"it", "its", "they", "them", "their", "this", "these", "those", "same"}


def retrieval_queries(question: str, history: Sequence[Turn]) -> list[str]:
    """What to search with: the question, or for a follow-up also the previous question with it."""
    previous = next((t.text.strip() for t in reversed(history) if t.role == "user" and t.text.strip()), None)
    if previous is None:
        return [question]
    lowered = question.strip().lower()
    follow_up = (
        len(lowered.split()) <= _FOLLOW_UP_MAX_WORDS
        or lowered.startswith(_OPENERS)
        or bool(_REFERRING & set(re.findall(r"[a-z']+", lowered)))
    )
    return [f"{previous} {question.strip()}", question] if follow_up else [question]


class AnswerPipeline:
    def __init__(self, settings: Settings, searcher: Searcher, llm: LLMClient | None) -> None:
        self.settings = settings
        self.searcher = searcher
        self.llm = llm
        self.system_prompt = self.check_settings(settings)

    @staticmethod
    def check_settings(settings: Settings) -> str:
        """Validates what the pipeline needs from the settings; returns the system prompt.

        Raises ValueError naming the setting to fix.
        """
        if prompt_budget(settings) < _MIN_PROMPT_TOKENS:
            raise ValueError(
                f"QWENBOT_LLM_CONTEXT_WINDOW ({settings.llm_context_window}) must exceed QWENBOT_LLM_MAX_TOKENS "
                f"({settings.llm_max_tokens}) by at least {_MIN_PROMPT_TOKENS + MARGIN_TOKENS} tokens"
            )
        return load_system_prompt(settings)

    def run(self, question: str, history: list[Turn], scope: Scope | None = None) -> Iterator[PipelineEvent]:
        """Status events, the answer text as Delta events, then exactly one Done.

        The Delta texts concatenated are exactly `Done.answer.text`.
        """
        start = time.monotonic()
        yield Status("searching")
        search_filter = SearchFilter(scope.path_prefixes, scope.tags) if scope else None
        hits = self._search(retrieval_queries(question, history), search_filter)
        timings = {"search": time.monotonic() - start}
        yield Status("reading", documents=len({h.path for h in hits}))

        best = max((h.dense_score for h in hits if h.dense_score is not None), default=None)
        if best is None or best < self.settings.abstain_threshold:
            answer = not_found_answer(hits)
        elif self.llm is None:
            answer = extractive_answer(hits, "no model endpoint configured (QWENBOT_LLM_BASE_URL is unset)")
        else:
            answer = yield from self._generate(question, hits, history, start)
        if answer.mode != "generated" and answer.text:
            yield Delta(answer.text)
        answer.timings = {**timings, **answer.timings, "total": time.monotonic() - start}
        yield Done(answer)

    def _search(self, queries: list[str], search_filter: SearchFilter | None) -> list[Hit]:
        k = self.settings.top_k
        if len(queries) == 1:
            return self.searcher.search(queries[0], k=k, filter=search_filter)
        rankings = [self.searcher.search(q, k=2 * k, filter=search_filter) for q in queries]
        fused = fuse([(1.0, [h.chunk_id for h in r]) for r in rankings], self.searcher.config.rrf_k)
        by_id = {h.chunk_id: h for r in reversed(rankings) for h in r}  # the fuller query's hit wins
        top = sorted(fused, key=fused.__getitem__, reverse=True)[:k]
        return [dataclasses.replace(by_id[cid], score=fused[cid]) for cid in top]

    def _generate(
        self, question: str, hits: list[Hit], history: Sequence[Turn], start: float
    ) -> Iterator[PipelineEvent]:
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
        return Answer(text=text, mode="generated", sources=sources, usage=usage, timings=timings,
                      model_error=str(error) if error else None)


def not_found_answer(hits: Sequence[Hit]) -> Answer:
    nearest = [s.to_source() for s in number_by_document(hits)[:_NEAREST_DOCS]]
    text = "I couldn't find this in the documentation I have access to."
    if nearest:
        text += " These are the closest documents, though they don't seem to answer it:"
    return Answer(text=text, mode="not_found", sources=nearest)


def extractive_answer(hits: Sequence[Hit], reason: str) -> Answer:
    """The best passages, quoted and cited by document number, labelled as not written by the model."""
    numbered = number_by_document(hits[:_EXTRACTIVE_PASSAGES])
    number = {s.hits[0].path: s.n for s in numbered}
    blocks = []
    for hit in hits[:_EXTRACTIVE_PASSAGES]:
        quote = _quote(hit.text, _EXTRACTIVE_CHARS)
        where = f"{hit.title} › {hit.heading_path}" if hit.heading_path and hit.heading_path != hit.title else hit.title
        blocks.append(f"{quote}\n— _{where}_ [{number[hit.path]}]")
    text = "**Model unavailable**, so here are the most relevant passages from the docs, quoted as written:\n\n"
    text += "\n\n".join(blocks) if blocks else "(no matching passages)"
    return Answer(text=text, mode="extractive", sources=[s.to_source() for s in numbered], model_error=reason)


def _quote(text: str, limit: int) -> str:
    """A Markdown block quote of the passage's start, its lines (lists, tables) kept."""
    lines = [line.rstrip() for line in text.strip().splitlines() if line.strip()]
    kept: list[str] = []
    used = 0
    for line in lines:
        if used + len(line) > limit:
            kept.append(excerpt(line, max(40, limit - used)) if not kept else "…")
            break
        kept.append(line)
        used += len(line)
    return "\n".join(f"> {line}" for line in kept)

"""Records passed between the answer pipeline and its callers (the Slack app, `qwenbot ask`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from bot.llm.events import Usage
from bot.messages import DEFAULT, message

# generated: the model's answer; extractive: passages quoted without a model (none configured, or it
# failed); not_found: the docs don't hold the answer (a gap for the doc owners); failed: the configured
# model failed and no passage answers clearly enough to quote: a failure, not a gap.
AnswerMode = Literal["generated", "extractive", "not_found", "failed"]


@dataclass(frozen=True)
class Turn:
    """One earlier message of the conversation. role: "user" or "assistant"."""

    role: Literal["user", "assistant"]
    text: str


@dataclass(frozen=True)
class Source:
    """A cited document passage. `n` is the number the answer text uses ([n])."""

    n: int
    title: str
    path: str
    heading_path: str
    url: str | None = None
    updated: str | None = None
    page: int | None = None
    score: float = 0.0
    excerpt: str = ""
    archived: bool = False  # the document is archived / deprecated / superseded: shown as such


@dataclass
class Answer:
    text: str
    mode: AnswerMode
    sources: list[Source] = field(default_factory=list)  # cited (generated/extractive) or nearest (the rest)
    usage: Usage = field(default_factory=Usage)
    timings: dict[str, float] = field(default_factory=dict)  # seconds: search, first_token, total
    model_error: str | None = None  # why the model gave no (complete) answer
    truncated: bool = False  # the model's answer stopped at the output token limit, mid-answer
    lang: str = DEFAULT  # the question's language: the catalogue the fixed texts around the answer come from

    @property
    def cited(self) -> list[str]:
        """The documents the answer cites (quotes, for extractive ones), in source order: what the log line,
        the eval and the stored answer count as cited. The nearest documents listed with "not in the docs"
        or a failure are not cited."""
        return [s.path for s in self.sources] if self.mode in ("generated", "extractive") else []


# Events a pipeline run yields, in order: Status*, Delta*, then exactly one Done.
@dataclass(frozen=True)
class Status:
    stage: Literal["searching", "reading", "thinking", "writing"]
    documents: int = 0  # for "reading": how many documents were retrieved
    passages: int = 0  # for "reading": how many passages
    found: tuple[Source, ...] = ()  # for "reading": the documents found, best first (Slack's task step sources)
    reranked: bool = False  # for "reading": a reranker orders the passages
    lang: str = DEFAULT  # the question's language (bot/messages.py)

    @property
    def text(self) -> str:
        """How the stage is shown to people (Slack's status line, `qwenbot ask`'s progress)."""
        if self.stage == "reading":
            key = "status_reading_one" if self.documents == 1 else "status_reading"
            return message(key, self.lang, n=self.documents)
        return message(f"status_{self.stage}", self.lang)


@dataclass(frozen=True)
class Delta:
    text: str


@dataclass(frozen=True)
class Done:
    answer: Answer


PipelineEvent = Status | Delta | Done

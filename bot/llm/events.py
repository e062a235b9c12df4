"""What a streamed model answer yields, in order: text and reasoning deltas, the token usage when the
server reports it, and last why the model stopped. Plain records, importable without the client."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Usage:
    """Tokens the server counted for one answer (0 when it did not report them)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class ReasoningDelta:
    text: str


@dataclass(frozen=True)
class UsageReport:
    usage: Usage


@dataclass(frozen=True)
class Finished:
    """Why the model stopped (the server's finish_reason): "stop", or "length" when the answer reached
    the output token limit (QWENBOT_LLM_MAX_TOKENS) and ends mid-sentence."""

    reason: str


LLMEvent = TextDelta | ReasoningDelta | UsageReport | Finished

"""Follow-up questions in a thread: what to search with, given the thread so far."""

from __future__ import annotations

import re
from collections.abc import Sequence

from bot.answer.records import Turn

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

"""Archived documents rank below current ones, unless the question asks about the past.

A document is archived when its front matter says so (retrieval/formats/front_matter.py). After fusion, an
archived hit's score is multiplied by DEMOTION, so it ranks below every current hit whose fused score
is at least DEMOTION times its own ("comparable") and still above current hits well behind it: an old
page that is the only good match is still found. A question about the past ("the 2022 per diem",
"the old VPN", "previous pricing") is what archived pages are kept for: it is not demoted at all.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from datetime import date

from retrieval.models import Hit

# Reciprocal rank fusion (k=60, two lists) packs the best scores closely: a chunk first in both lists
# scores 2/61, one 16th in both 2/76, four fifths of that. An archived page at the top thus yields to
# a current one that both retrievers put in their top 16 (or one ranks first and the other top 40).
DEMOTION = 0.8

_PAST_WORDS = re.compile(
    r"\b(?:old|older|oldest|previous|previously|prior|former|formerly|past|legacy|archived?|deprecated|"
    r"superseded|outdated|obsolete|historic|historical|used to|back in)\b",
    re.IGNORECASE,
)
_YEAR = re.compile(r"(?<![\d$€£.,])((?:19|20)\d\d)(?!\d)")


def asks_about_past(query: str, today: date | None = None) -> bool:
    """Whether the question is about how things were: a word such as "old", "previous" or "legacy",
    or a year before the current one."""
    if _PAST_WORDS.search(query):
        return True
    this_year = (today or date.today()).year
    return any(int(year) < this_year for year in _YEAR.findall(query))


def candidate_pool(fused: Sequence[tuple[str, float]], k: int, query: str) -> list[tuple[str, float]]:
    """The fused candidates (best first) that can still make the top `k` once archived ones are
    demoted: those scoring at least DEMOTION times the k-th score, since the k-th place after demotion
    never scores less than that. Just the top `k` for a question about the past."""
    if k <= 0 or not fused:
        return []
    if len(fused) <= k or asks_about_past(query):
        return list(fused[:k])
    floor = fused[k - 1][1] * DEMOTION
    return [item for item in fused if item[1] >= floor]


def demote_archived(hits: Sequence[Hit], query: str) -> list[Hit]:
    """`hits` (best first) with archived ones' scores multiplied by DEMOTION, best first again; at a
    tie the current hit goes first. Unchanged for a question about the past."""
    if asks_about_past(query) or not any(h.archived for h in hits):
        return list(hits)
    scaled = [dataclasses.replace(h, score=h.score * DEMOTION) if h.archived else h for h in hits]
    return sorted(scaled, key=lambda h: (h.score, not h.archived), reverse=True)  # stable otherwise

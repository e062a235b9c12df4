"""Which channel messages read as a question meant for help (auto mode answers only those), and which
mentions in a thread only summon the bot to the thread's open question.

The question filter is a few plain rules, measured on a labelled set of channel messages
(tests/fixtures/channel_messages.jsonl; `python -m bench.bench_question_filter` prints precision and
recall): a message that mentions a person or a group is for them; a greeting, a thank-you or an
announcement is not a question; otherwise a question mark, a question word first, or a plea for help
("does anyone know", "I can't", "how do I") makes it one. Precision matters most: an answer nobody
asked for is noise in a channel, and a missed question can still mention the bot."""

from __future__ import annotations

import re

from bot.answer.records import Answer, Turn

# Slack markup that addresses people: a user, a user group, @here / @channel / @everyone
_ADDRESSED = re.compile(r"<@[UW][A-Z0-9]+(?:\|[^>]*)?>|<!subteam\^[A-Z0-9]+(?:\|[^>]*)?>|<!(?:here|channel|everyone)>")
_WORD = re.compile(r"[\w']+")
_GREETING = re.compile(
    r"^(?:hi|hello|hey|hiya|yo|morning|good (?:morning|afternoon|evening)|gm|thanks?|thank you|thx|ty|cheers|"
    r"congrats|congratulations|welcome|bye|see you|lol|haha|nice|great|awesome|cool|ok|okay|\+1|same|done|"
    r"happy \w+day)\b",
    re.I,
)
_ANNOUNCEMENT = re.compile(
    r"^(?::[a-z_]+:\s*)*(?:announcement|reminder|fyi|psa|heads[- ]up|update|news|note|release notes?|"
    r"we(?:'re| are) (?:happy|excited|pleased|thrilled)|please welcome|join us|don't forget|"
    r"the office will|starting (?:today|tomorrow|monday)|today we|this week)\b",
    re.I,
)
_QUESTION_START = re.compile(
    r"^(?:how|what|where|when|why|who|whom|whose|which|can|could|does|do|did|is|are|was|were|should|"
    r"shall|will|would|may|might|has|have|am|any(?:one|body)|is there|are there|where's|what's|how's|who's)\b"
    r"(?!')",  # "Can't wait for Friday!" is not a question
    re.I,
)
_PLEA = re.compile(
    r"\b(?:does any(?:one|body) know|any(?:one|body) know|any idea|not sure (?:how|where|what|if|whether)|"
    r"i can't|i cannot|i'm unable|unable to|i need (?:help|to know)|need help|help me|looking for|"
    r"how do i|how can i|where can i|where do i|what's the (?:process|policy|way)|is it possible|"
    r"i'm trying to|trying to figure out|can someone|can somebody|wondering (?:how|if|whether|what))\b",
    re.I,
)
MIN_WORDS = 3  # fewer words read as chatter ("ok?", "lunch?"), even with a question mark

# A mention in a thread that asks nothing of its own ("@qwenbot can you help?"): only these words
_SUMMON_WORDS = frozenset(
    "a an and any answer anyone above at bot can could do does help here hey hi idea ideas is it know look "
    "maybe me one our please pls question qwenbot take thanks that the this thoughts thread to us what "
    "with would you".split()
)
SUMMON_MAX_WORDS = 8


def reads_as_question(text: str) -> bool:
    """Whether a channel message (Slack text) reads as a question meant for help."""
    if _ADDRESSED.search(text):
        return False  # meant for the people it names
    plain = re.sub(r"<[^>]*>", " ", text).strip()
    words = _WORD.findall(plain)
    if len(words) < MIN_WORDS:
        return False
    first = plain.lstrip("*_>•- \t")
    if _ANNOUNCEMENT.match(first):
        return False
    asks = "?" in plain or bool(_QUESTION_START.match(first)) or bool(_PLEA.search(plain))
    if _GREETING.match(first) and not asks:
        return False
    return asks


def is_summon(text: str) -> bool:
    """Whether a mention's own words (the bot's mention removed) ask nothing of their own."""
    words = [w.lower() for w in _WORD.findall(text)]
    return len(words) <= SUMMON_MAX_WORDS and all(w in _SUMMON_WORDS for w in words)


def open_question(turns: list[Turn]) -> tuple[str, list[Turn]] | None:
    """The thread's open question, for a summon: the newest message of a person that reads as a
    question, else the thread's first message of a person; with the turns before it as its history."""
    people = [i for i, t in enumerate(turns) if t.role == "user" and t.text.strip()]
    if not people:
        return None
    asked = [i for i in people if reads_as_question(turns[i].text)]
    at = asked[-1] if asked else people[0]
    return turns[at].text, turns[:at]


def grounded(answer: Answer) -> bool:
    """Auto mode answers only this: the model answered from the docs (not "not in the docs", not
    passages quoted for want of a model) and cites at least one source."""
    return answer.mode == "generated" and bool(answer.cited)

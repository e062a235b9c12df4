"""Safety fuzz: random mixes of Slack control sequences, Markdown links, zero-width and fullwidth
characters, fed through doc text, front matter, model output and the user's question into the real
render and reply code. Nothing that reaches Slack may ping anyone or link to a non-http(s) target."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from datetime import date
from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st
from support.fake_openai import answer
from support.safety import dangers, sent_strings
from support.slack_bot import GENERAL, QUESTION, Bot

from bot.answer.records import Answer, Source
from bot.slack import mrkdwn
from bot.slack.questions import plain_text
from bot.slack.render.answer import answer_messages
from retrieval.errors import LoadError
from retrieval.loaders import load_document

_FRAGMENTS = [
    "<!channel>",
    "<!here>",
    "<!everyone>",
    "<!here|here>",
    "<@U0ALICE>",
    "<@U0BOB|bob>",
    "<!subteam^S0ADMINS>",
    "<!subteam^S0ADMINS|@admins>",
    "<#C0GENERAL>",
    "<#C0GENERAL|general>",
    "@here",
    "@channel",
    "@everyone",
    "＜!channel＞",
    "＜@U0ALICE＞",
    "<\u200b!here>",
    "<\u2060!channel>",
    "<\ufeff@U0ALICE>",
    "@\u200bhere",
    "[reset your password](https://evil.example/phish)",
    "[click](javascript:alert(1))",
    "![x](data:text/html,hi)",
    "<javascript:alert(1)>",
    "<https://evil.example|label>",
    "<mailto:a@b.example|mail>",
    "[ref]: javascript:alert(2)\n",
    "[a [1] b](vbscript:x)",
    "[1]",
    "`code <!here>`",
    "```\n<!channel>\n```",
    "List<String>",
    " ",
    "\n",
    "text",
]
_PIECES = st.one_of(
    st.sampled_from(_FRAGMENTS),
    st.text(alphabet="<>!@#^|[]():/ aZ\n\u200b\u2060＜＞＠", max_size=6),
)
UNTRUSTED = st.lists(_PIECES, max_size=24).map("".join)
# derandomized: the same examples on every run, so CI is stable; found failures are pinned with @example
FAST = settings(max_examples=200, deadline=None, derandomize=True)


@FAST
@given(UNTRUSTED)
def test_safety_fuzz_neutralize_and_escape(text: str) -> None:
    assert not dangers(mrkdwn.neutralize(text))
    assert not dangers(mrkdwn.escape(text))


@FAST
@given(UNTRUSTED, st.integers(min_value=0, max_value=400))
def test_safety_fuzz_streamed_prefixes(text: str, end: int) -> None:
    prefix = text[:end]
    assert not dangers(mrkdwn.neutralize(prefix[: mrkdwn.safe_prefix_length(prefix)]))


@FAST
@given(UNTRUSTED, UNTRUSTED, UNTRUSTED, UNTRUSTED, st.booleans())
@example(text="", title="", url="", heading="<!channel>[ref]: javascript:alert(2)\n[", mailto=False)
def test_safety_fuzz_rendered_answer(text: str, title: str, url: str, heading: str, mailto: bool) -> None:
    sources = [Source(n=1, title=title, path="a/" + heading, heading_path=heading, url=url, updated=title)]
    allowed = ("http", "https", "mailto") if mailto else ("http", "https")
    for mode in ("generated", "extractive", "not_found"):
        result = Answer(text=text, mode=mode, sources=sources)
        for message in answer_messages(result, 1, 365, date(2026, 1, 1), allow_mailto=mailto):
            for value in [message.text, *sent_strings(message.blocks)]:
                assert not dangers(value, allowed), value


@FAST
@given(UNTRUSTED)
def test_safety_fuzz_question(text: str) -> None:
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")  # as Slack sends it
    assert not dangers(plain_text(escaped, "U0BOT"))
    assert not dangers(plain_text(text, "U0BOT"))


@settings(max_examples=50, deadline=None, derandomize=True)
@given(UNTRUSTED, UNTRUSTED, UNTRUSTED, UNTRUSTED)
def test_safety_fuzz_front_matter_and_doc_text(title: str, url: str, owner: str, body: str) -> None:
    path = Path(f"/tmp/csafe-fuzz-{id(title)}.md")
    front = {"title": title, "url": url, "owner": owner, "tags": [title, owner]}
    path.write_text("---\n" + json.dumps(front) + "\n---\n\n# Heading " + title + "\n\n" + body + "\n")
    try:
        doc = load_document(path, "fuzz/doc.md")
    except LoadError:
        return  # refused as a whole, with a message: nothing reaches Slack
    finally:
        path.unlink()
    heading = " > ".join(doc.blocks[0].headings) if doc.blocks else ""
    source = Source(n=1, title=doc.title, path=doc.path, heading_path=heading, url=doc.url, updated=doc.updated)
    text = "\n\n".join(b.text for b in doc.blocks)
    [*_, last] = answer_messages(Answer(text=text, mode="extractive", sources=[source]), 1, 365)
    for message in answer_messages(Answer(text=text, mode="extractive", sources=[source]), 1, 365):
        for value in [message.text, *sent_strings(message.blocks)]:
            assert not dangers(value), value
    assert last.blocks[-1]["block_id"] == "feedback"


def _random_mix(rng: random.Random) -> str:
    return "".join(rng.choice(_FRAGMENTS) for _ in range(rng.randint(1, 16)))


def test_safety_fuzz_end_to_end_through_fake_slack(make_bot: Callable[..., Bot], evil_index: Path) -> None:
    """A handful of random mixes as the model's streamed answer and the user's question, through the
    real app, answer pipeline (over the hostile docs) and reply code into the fake Slack."""
    rng = random.Random(2026)
    bot = make_bot(index_dir=evil_index)
    for _ in range(4):
        model, question = _random_mix(rng), _random_mix(rng)
        cut = rng.randint(0, len(model))
        bot.llm.push(answer([model[:cut], model[cut:] + " [1]"]))
        escaped = question.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")  # as Slack sends it
        ts, delivery = bot.ask(QUESTION + " " + escaped)
        assert delivery.status == 200
        bot.answer_in(GENERAL, ts)
    sent = [c for c in bot.slack.calls if c.method.startswith("chat.")]
    assert len([c for c in sent if c.method in ("chat.stopStream", "chat.postMessage")]) >= 4
    for call in sent:
        for value in sent_strings(call.args):
            assert not dangers(value), (call.method, value)

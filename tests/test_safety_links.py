"""Safety: document metadata and Markdown links never ping anyone or link to a non-http(s) target.

Defects 1 (front-matter `url` pinged people through the Sources line), 5 (Markdown links passed
through untouched) and 13 (a question was neutralised before it was unescaped)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest
from support.fake_openai import answer
from support.safety import EVIL_URLS, dangers, sent_strings
from support.slack_bot import GENERAL, QUESTION, Bot

from bot.answer.records import Source
from bot.slack import mrkdwn
from bot.slack.questions import plain_text
from bot.slack.render.sources import source_line

J = "\u2060"


def _source(url: str) -> Source:
    return Source(n=1, title="Vacation days policy", path="hr/vacation.md", heading_path="Leave", url=url)


@pytest.mark.parametrize("url", [*EVIL_URLS.values(), "mailto:hr@example.com", "https://x.example/a b"])
def test_safety_source_url_that_is_not_http_is_never_a_link(url: str) -> None:
    line = source_line(_source(url), 365, date(2026, 1, 1))
    assert not dangers(line), line
    assert "<" not in line and "Vacation days policy" in line and "hr/vacation.md" in line


def test_safety_http_source_urls_stay_links_and_mailto_only_when_allowed() -> None:
    line = source_line(_source("https://wiki.example/hr?a=1&b=2"), 365, date(2026, 1, 1))
    assert line.startswith("[1] <https://wiki.example/hr?a=1&b=2|Vacation days policy>")
    mail = _source("mailto:hr@example.com")
    assert "<mailto:hr@example.com|" in source_line(mail, 365, date(2026, 1, 1), allow_mailto=True)
    assert "<mailto:" not in source_line(mail, 365, date(2026, 1, 1))


def test_safety_markdown_links_show_their_real_target() -> None:
    text = (
        "First [reset your password here](https://evil.example/phish), then [click](javascript:alert(1)) "
        'or ![x](data:image/png;base64,AAAA "t") and <javascript:alert(2)>; nested [a [1] b](vbscript:x), '
        "a reference [docs][r] with\n[r]: javascript:alert(3)\nand a citation [2]."
    )
    out = mrkdwn.neutralize(text)
    assert "reset your password here (https://evil.example/phish)" in out
    assert "click (javascript:alert(1))" in out
    assert "x (data:image/png;base64,AAAA)" in out
    assert "javascript:alert(2)" in out and "<javascript" not in out
    assert "](" not in out and "\n[r]:" not in out
    assert "citation [2]." in out
    assert not dangers(out), out


def test_safety_streamed_markdown_links_are_stable_prefixes() -> None:
    text = "See [the guide](https://x.example/g) and [1], or [bad](javascript:alert(1)) [2].\n[r]: ftp://x\n" * 3
    final = mrkdwn.neutralize(text)
    for end in range(len(text) + 1):
        prefix = text[:end]
        safe = mrkdwn.neutralize(prefix[: mrkdwn.safe_prefix_length(prefix)])
        assert final.startswith(safe), (end, safe[-40:])
        assert not dangers(safe)


def test_safety_escaped_control_sequences_in_a_question_are_neutralised() -> None:
    # Slack escapes what a person types: "<!channel>" arrives as "&lt;!channel&gt;".
    text = plain_text("<@U0BOT> what is &lt;!channel&gt; and &lt;@U0ALICE&gt; &amp; [x](javascript:y)?", "U0BOT")
    assert "<" not in text and f"@{J}channel" in text and f"@{J}U0ALICE" in text
    assert "&" in text and not dangers(text)


@pytest.mark.parametrize(
    "mode",
    ["no model", "model with control sequences", "model echoing the question"],
)
def test_safety_end_to_end_nothing_sent_to_slack_pings_or_links_elsewhere(
    make_bot: Callable[..., Bot],
    evil_index: Path,
    mode: str,
) -> None:
    question = QUESTION + " &lt;!here&gt; [go](javascript:alert(4))"
    if mode == "no model":
        bot = make_bot(index_dir=evil_index, llm_base_url=None)
    else:
        bot = make_bot(index_dir=evil_index)
        if mode == "model echoing the question":
            bot.llm.push(answer(["You asked: <!here> [go](javascript:alert(4)) ", "25 days [1] [2] [3] [4]."]))
        else:
            bot.llm.push(answer(["<!chan", "nel> 25 days [1]. <@U0ALICE> [form](javascript:x) [2] [3] [4]"]))
    ts, _ = bot.ask(question)
    [message] = bot.answer_in(GENERAL, ts)
    sources = message.blocks[-2]["text"]["text"]
    # sources or, where the hostile question made it abstain, the closest documents
    assert sources.startswith(("*Sources*", "*Closest documents*")) and "Vacation days policy" in sources
    sent = [c.args for c in bot.slack.calls if c.method.startswith("chat.")]
    assert sent
    for args in sent:
        for value in sent_strings(args):
            assert not dangers(value), (args, value)

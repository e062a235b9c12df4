"""Safety: no link in what the bot renders hides its target, judged by a real CommonMark parser
(markdown-it-py) rather than by our own patterns.

Audit finding 4 (second round): a reference-style definition inside a block quote (`> [r]: url`),
a list item (`- [r]: url`) or at the start of a quoted passage got through neutralisation, and
"the [Payroll portal][pp]" then rendered as a link to wherever `[pp]` pointed."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt
from markdown_it.token import Token

from bot.answer.records import Answer, Source
from bot.slack import mrkdwn
from bot.slack.render.answer import answer_text

EVIL = "https://evil.example/steal-sso-login"
_PARSER = MarkdownIt("commonmark")


def _links(tokens: list[Token]) -> list[tuple[str, str]]:
    """(target, visible text) of every link and image, nested containers included."""
    found: list[tuple[str, str]] = []
    for token in tokens:
        children = token.children or []
        for i, child in enumerate(children):
            if child.type == "image":
                found.append((str(child.attrGet("src")), child.content))
            if child.type != "link_open":
                continue
            text = []
            for inner in children[i + 1 :]:
                if inner.type == "link_close":
                    break
                text.append(inner.content)
            found.append((str(child.attrGet("href")), "".join(text)))
    return found


def hidden_links(markdown: str) -> list[tuple[str, str]]:
    """Links CommonMark would render whose target is not what they show."""
    env: dict[str, dict[str, object]] = {}
    links = _links(_PARSER.parse(markdown, env))
    return [(href, text) for href, text in links if href != text] + [
        (ref, "definition") for ref in env.get("references", {})
    ]


def test_the_oracle_sees_hidden_links() -> None:
    assert hidden_links("the [Payroll portal][pp]\n\n> [pp]: https://evil.example/x")
    assert hidden_links("- [pp]: https://evil.example/x\n\nthe [Payroll portal][pp]")
    assert hidden_links("[a](https://x.example)")
    assert not hidden_links("see <https://x.example> and [1]")


CONTAINERS = [
    "{d}",
    "> {d}",
    ">{d}",
    "> > {d}",
    "- {d}",
    "* {d}",
    "1. {d}",
    "  - {d}",
    "- > {d}",
    "> - {d}",
    "   {d}",
    "1) > 2. {d}",
]
DEFINITIONS = [
    f"[pp]: {EVIL}",
    f"[pp]:{EVIL}",
    f"[pp]: <{EVIL}>",
    f'[pp]: {EVIL} "Payroll"',
    f"[pp]:\n{EVIL}",
    f"[p\np]: {EVIL}",
    f"[PP]: {EVIL}",
    f"[p\\]p]: {EVIL}",
]


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    container=st.sampled_from(CONTAINERS),
    definition=st.sampled_from(DEFINITIONS),
    before=st.sampled_from(["", "Intro.\n\n", "> quoted passage\n", "text\n"]),
    use=st.sampled_from(["the [Payroll portal][pp]", "the [pp][]", "the [pp]", "[Payroll][PP]", "[Payroll][p p]"]),
    use_first=st.booleans(),
)
@example(container="> {d}", definition=f"[pp]: {EVIL}", before="", use="the [Payroll portal][pp]", use_first=True)
def test_reference_definitions_in_any_container_are_defused(
    container: str, definition: str, before: str, use: str, use_first: bool
) -> None:
    block = container.format(d=definition)
    text = f"{use}\n\n{before}{block}\n" if use_first else f"{before}{block}\n\n{use}\n"
    out = mrkdwn.neutralize(text)
    assert not hidden_links(out), (text, out)
    assert "evil.example" in out  # shown, not dropped


def test_an_extractive_answer_quoting_a_definition_renders_no_hidden_link() -> None:
    passage = f"[pp]: {EVIL}\nUse the [Payroll portal][pp] to see your payslips."
    answer = Answer(
        text=f"> {passage}\n\n[1]",
        sources=[Source(n=1, title="Payroll", path="hr/payroll.md", heading_path="Payslips", url="")],
        mode="extractive",
    )
    text = answer_text(answer)
    assert not hidden_links(text), text


def test_a_model_answer_ending_in_a_quoted_definition_renders_no_hidden_link() -> None:
    raw = f"Open the [Payroll portal][pp] [1].\n\n> [pp]: {EVIL}"
    out = mrkdwn.neutralize(raw)
    assert not hidden_links(out), out
    # the streamed prefixes stay free of it too
    for end in range(len(raw) + 1):
        prefix = raw[:end]
        assert not hidden_links(mrkdwn.neutralize(prefix[: mrkdwn.safe_prefix_length(prefix)]))


def test_citations_and_ordinary_brackets_are_kept() -> None:
    assert mrkdwn.neutralize("25 days [1] and [2].") == "25 days [1] and [2]."

"""Untrusted text made inert, and answers rendered within Slack's limits (no Slack needed)."""

from __future__ import annotations

from datetime import date

from support.fake_slack import _check_limits

from bot.answer.records import Answer, Source
from bot.slack import mrkdwn
from bot.slack.render.answer import answer_messages, split_markdown
from bot.slack.render.blocks import MARKDOWN_LIMIT
from bot.slack.render.feedback import ACTION_DOWN, ACTION_FEEDBACK, ACTION_UP

J = "\u2060"


def test_broadcasts_mentions_and_links_are_neutralised() -> None:
    text = (
        "Ping <!channel>, <!here|here>, <!everyone> and <@U123> or <@U9|bob>, the <!subteam^S1|@devs> "
        "group, <#C42|general>; <https://evil.example/x|the handbook>, <mailto:a@b.c>, and bare @here."
    )
    out = mrkdwn.neutralize(text)
    for token in (
        "<!channel>",
        "<!here",
        "<!everyone>",
        "<@U123>",
        "<@U9",
        "<!subteam",
        "<#C42",
        "<https://",
        "<mailto:",
    ):
        assert token not in out
    assert f"@{J}channel" in out and f"@{J}here" in out and f"@{J}everyone" in out
    assert f"@{J}U123" in out and f"@{J}bob" in out and f"@{J}devs" in out
    assert "the handbook (https://evil.example/x)" in out  # the real target is shown
    assert "#general" in out
    assert "<" not in out and ">" not in out


def test_code_and_emails_survive_and_mrkdwn_escaping_closes_everything() -> None:
    text = "Use `List<String>` in <div> blocks; mail ops@here.com or a@everyone.org. A & B"
    assert mrkdwn.neutralize(text) == text
    escaped = mrkdwn.escape(text)
    assert "<" not in escaped and ">" not in escaped
    assert "List&lt;String&gt;" in escaped and "A &amp; B" in escaped
    assert mrkdwn.unescape(escaped) == text


def test_neutralize_is_stable_on_streamed_prefixes() -> None:
    text = "Hello <!channel> see <https://x.example/a|doc> and @everyone.\nMore <@U1|ann> @here ok " * 3
    final = mrkdwn.neutralize(text)
    for end in range(len(text) + 1):
        prefix = text[:end]
        safe = mrkdwn.neutralize(prefix[: mrkdwn.safe_prefix_length(prefix)])
        assert final.startswith(safe), (end, safe[-40:])


def test_long_answers_split_within_limits_and_nothing_is_lost() -> None:
    para = "A paragraph about vacation policy, with details and numbers 1234. " * 20
    code = "```python\n" + "\n".join(f"print({i})" for i in range(900)) + "\n```"
    text = "\n\n".join([para] * 12 + [code] + [para] * 6)
    parts = split_markdown(text, limit=MARKDOWN_LIMIT)
    assert len(parts) >= 3
    assert all(len(p) <= MARKDOWN_LIMIT for p in parts)
    joined = "".join(parts)
    # a code block cut in two is closed and reopened: only those fences are added
    assert "``````python\n" in joined and joined.replace("``````python\n", "") == text
    for p in parts:
        assert p.count("```") % 2 == 0


def test_a_word_longer_than_the_limit_is_cut_not_dropped() -> None:
    text = "x" * 25_000
    parts = split_markdown(text, limit=10_000)
    assert "".join(parts) == text and all(len(p) <= 10_000 for p in parts)


def _answer(mode: str = "generated", text: str = "You get **25 days** [1].", **kw: object) -> Answer:
    sources = [
        Source(
            n=1,
            title="Leave <!channel> policy",
            path="hr/leave.md",
            heading_path="Leave > Vacation",
            url="https://wiki.example/leave",
            updated="2025-06-01",
        ),
        Source(n=2, title="Old handbook", path="hr/old.md", heading_path="Holidays", updated="2019-01-01"),
    ]
    return Answer(text=text, mode=mode, sources=sources, **kw)  # type: ignore[arg-type]


def test_answer_message_has_markdown_sources_with_stale_flag_and_buttons() -> None:
    [message] = answer_messages(_answer(), answer_id=7, stale_days=365, today=date(2026, 1, 1))
    kinds = [b["type"] for b in message.blocks]
    assert kinds == ["markdown", "section", "context_actions"]
    assert message.blocks[0]["text"] == "You get **25 days** [1]."
    sources = message.blocks[1]["text"]["text"]
    assert sources.startswith("*Sources*")
    assert "[1] <https://wiki.example/leave|Leave @\u2060channel policy> · Leave &gt; Vacation" in sources
    assert "updated 2025-06-01" in sources and "2025-06-01 :warning:" not in sources
    assert "[2] *Old handbook* `hr/old.md`" in sources
    assert "updated 2019-01-01 :warning: _older than 365 days" in sources
    [feedback] = message.blocks[2]["elements"]
    # Slack's documented shape: a feedback_buttons element with a positive and a negative button
    assert feedback["type"] == "feedback_buttons" and feedback["action_id"] == ACTION_FEEDBACK
    assert feedback["positive_button"]["value"] == "up:7" and feedback["negative_button"]["value"] == "down:7"
    assert feedback["positive_button"]["text"] == {"type": "plain_text", "text": "Helpful"}
    assert _check_limits(message.text, message.blocks) is None


def test_the_old_buttons_remain_as_a_setting() -> None:
    [message] = answer_messages(_answer(), answer_id=7, stale_days=365, feedback_style="buttons")
    buttons = message.blocks[-1]["elements"]
    assert message.blocks[-1]["type"] == "actions"
    assert [b["action_id"] for b in buttons] == [ACTION_UP, ACTION_DOWN]
    assert {b["value"] for b in buttons} == {"7"}


def test_ask_an_owner_is_offered_on_not_found_answers_only_when_configured() -> None:
    def kinds(mode: str, ask: bool) -> list[str]:
        [message] = answer_messages(_answer(mode, "x"), 3, 365, ask_owner=ask)
        return [str(b.get("block_id", b["type"])) for b in message.blocks]

    assert kinds("not_found", True) == ["markdown", "section", "ask_owner", "feedback"]
    assert "ask_owner" not in kinds("not_found", False) and "ask_owner" not in kinds("generated", True)


def test_not_found_lists_the_closest_documents() -> None:
    [missing] = answer_messages(_answer("not_found", ""), 2, 365)
    assert "couldn't find" in missing.blocks[0]["text"]
    assert missing.blocks[1]["text"]["text"].startswith("*Closest documents*")


def test_long_answer_becomes_several_messages_each_within_slack_limits() -> None:
    text = ("Step by step, a long explanation of the process. " * 40 + "\n\n") * 15
    messages = answer_messages(_answer(text=text), 3, 365)
    assert len(messages) >= 3
    for message in messages:
        assert _check_limits(message.text, message.blocks) is None
    assert [b["type"] for b in messages[-1].blocks][-1] == "context_actions"
    assert all(b["type"] == "markdown" for m in messages[:-1] for b in m.blocks)
    shown = "".join(m.blocks[0]["text"] for m in messages)
    assert shown == text.strip()

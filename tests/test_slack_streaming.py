"""One threaded reply against the fake Slack over HTTP: status, streaming, the chat.update fallback."""

from __future__ import annotations

from support.clock import Clock
from support.fake_slack import BOT_TOKEN, TEAM, FakeSlack

from bot.answer.records import Answer, Source
from bot.settings import load_settings
from bot.slack.client import make_client
from bot.slack.render.answer import answer_messages, answer_text
from bot.slack.render.blocks import Message
from bot.slack.reply import ThreadReply

CHANNEL = "C0GENERAL"
USER = "U0ALICE"


def _reply(slack: FakeSlack, clock: Clock | None = None) -> tuple[ThreadReply, str]:
    settings = load_settings(None, slack_api_url=slack.api_url, slack_bot_token=BOT_TOKEN)
    ts = slack.add_message(CHANNEL, USER, "<@U0BOT> how many vacation days?")
    client = make_client(settings.slack_config())
    if clock is None:
        return ThreadReply(client, CHANNEL, ts, ts, user=USER, team=TEAM), ts
    return ThreadReply(client, CHANNEL, ts, ts, user=USER, team=TEAM, clock=clock), ts


def _final(text: str) -> list[Message]:
    answer = Answer(
        text=text, mode="generated", sources=[Source(1, "Vacation", "hr/vacation.md", "Vacation > Allowance")]
    )
    return answer_messages(answer, answer_id=1, stale_days=365)


def test_streams_status_then_text_then_sources_and_buttons(slack: FakeSlack) -> None:
    reply, ts = _reply(slack)
    reply.status("Searching the docs…")
    reply.status("Reading 3 documents…")
    pieces = ["You get ", "**25 days** <!chan", "nel> of paid vacation ", "a year [1]. " * 30]
    for piece in pieces:
        reply.append(piece)
    final_ts = reply.finish(_final("".join(pieces)))

    statuses = [c.args["status"] for c in slack.calls_to("assistant.threads.setStatus")]
    assert statuses == ["Searching the docs…", "Reading 3 documents…"]
    start = slack.calls_to("chat.startStream")[0].args
    assert (start["channel"], start["thread_ts"], start["recipient_user_id"], start["recipient_team_id"]) == (
        CHANNEL,
        ts,
        USER,
        TEAM,
    )
    assert slack.calls_to("chat.appendStream")
    assert len(slack.calls_to("chat.stopStream")) == 1
    assert not slack.calls_to("chat.postMessage") and not slack.calls_to("chat.update")
    [message] = slack.bot_messages(CHANNEL, ts)
    assert message.ts == final_ts and not message.streaming
    assert "<!channel>" not in message.text and "@\u2060channel" in message.text
    assert message.text == answer_text(Answer("".join(pieces), "generated"))
    assert [b["type"] for b in message.blocks] == ["markdown", "section", "context_actions"]
    # nothing held back by the neutraliser is lost: every streamed piece is in the message
    streamed = start["markdown_text"] + "".join(c.args["markdown_text"] for c in slack.calls_to("chat.appendStream"))
    assert streamed == message.text


def test_streaming_refused_falls_back_to_a_placeholder_edited_at_most_once_a_second(slack: FakeSlack) -> None:
    slack.refuse_streaming = True
    clock = Clock()
    reply, ts = _reply(slack, clock)
    text = ""
    for i in range(40):  # 40 pieces over 4 seconds of (controlled) time
        piece = f"word{i} "
        text += piece
        reply.append(piece)
        clock.now += 0.1
    reply.finish(_final(text))

    assert len(slack.calls_to("chat.startStream", ok_only=False)) == 1  # tried once, refused, not again
    posts = slack.calls_to("chat.postMessage")
    assert len(posts) == 1 and posts[0].args["unfurl_links"] is False and posts[0].args["unfurl_media"] is False
    updates = slack.calls_to("chat.update")
    assert 3 <= len(updates) <= 5  # ~1 a second during 4 s, plus the final one
    [message] = slack.bot_messages(CHANNEL, ts)
    assert message.text == answer_messages(Answer(text, "generated"), 1, 365)[0].text
    assert [b["type"] for b in message.blocks] == ["markdown", "section", "context_actions"]


def test_status_unavailable_falls_back_to_an_eyes_reaction_once(slack: FakeSlack) -> None:
    slack.refuse_status = True
    reply, ts = _reply(slack)
    reply.status("Searching the docs…")
    reply.status("Reading 2 documents…")
    assert len(slack.calls_to("assistant.threads.setStatus", ok_only=False)) == 1
    [reaction] = slack.calls_to("reactions.add")
    assert reaction.args == {"channel": CHANNEL, "timestamp": ts, "name": "eyes"}


def test_a_429_on_the_final_update_is_retried_after_retry_after(slack: FakeSlack) -> None:
    slack.refuse_streaming = True
    reply, ts = _reply(slack)
    reply.append("Partial answer ")
    slack.fail("chat.update", "ratelimited", status=429, retry_after=1)
    reply.finish(_final("Partial answer and the rest [1]."))
    updates = slack.calls_to("chat.update", ok_only=False)
    assert [u.ok for u in updates] == [False, True]
    assert updates[1].at - updates[0].at >= 0.9  # waited for Retry-After
    [message] = slack.bot_messages(CHANNEL, ts)
    assert message.text.startswith("Partial answer and the rest")


def test_text_beyond_one_message_continues_in_further_messages(slack: FakeSlack) -> None:
    reply, ts = _reply(slack)
    text = ("A long paragraph explaining the release process in detail. " * 30 + "\n\n") * 14
    for i in range(0, len(text), 500):
        reply.append(text[i : i + 500])
    reply.finish(_final(text))
    messages = slack.bot_messages(CHANNEL, ts)
    assert len(messages) >= 2
    shown = "".join(m.blocks[0]["text"] for m in messages)
    assert shown == text.strip()
    assert messages[-1].blocks[-1]["type"] == "context_actions"
    assert all(m.blocks[-1].get("block_id") != "feedback" for m in messages[:-1])

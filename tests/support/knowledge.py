"""The knowledge tests' setting: a bot on an index of its own (a copy of the session's small docs
index, which saving a learned answer writes to), channel scopes with experts and an auto channel, and
what people do in Slack: reply in a thread, click a button, submit a modal, run a slash command."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from support.fake_openai import answer
from support.fake_slack import (
    BOT_USER,
    Delivery,
    Message,
    block_action_payload,
    command_form,
    event_body,
    mention_event,
    message_event,
    post_event,
    post_form,
    post_interaction,
    view_submission_payload,
)
from support.paths import SMALL_DOCS
from support.slack_bot import Bot

HR = "C0HRHELP"  # hr/ docs; experts S0HREXPERT; public
HR_TOO = "C0HRDESK1"  # the same scope as HR: shares its learned answers
ENGINEERING = "C0ENGINEER"  # engineering/ docs; experts S0ENGEXPRT
HELPDESK = "C0HELPDESK"  # mode: auto, the default scope's docs
GENERAL = "C0GENERAL"  # not listed: the default scope, no experts
HR_EXPERTS = "S0HREXPERT"
ENG_EXPERTS = "S0ENGEXPRT"
ASKER, EXPERT, OTHER, ADMIN = "U0ALICE", "U0DANA", "U0BOB", "U0ADMIN"


def scopes_file(tmp_path: Path) -> Path:
    path = tmp_path / "knowledge_scopes.yml"
    path.write_text(
        f"""
channels:
  {HR}: {{path_prefixes: [hr/], experts: {HR_EXPERTS}}}
  {HR_TOO}: {{path_prefixes: [hr/], experts: {HR_EXPERTS}}}
  {ENGINEERING}: {{path_prefixes: [engineering/], experts: {ENG_EXPERTS}}}
  {HELPDESK}: {{mode: auto}}
"""
    )
    return path


def knowledge_bot(
    make_bot: Callable[..., Bot], tmp_path: Path, small_index: Path, scopes: Path | None = None, **overrides: Any
) -> Bot:
    """A bot on its own copy of the small docs index, with the knowledge scopes (or `scopes`) and an admin."""
    index = tmp_path / "index"
    shutil.copytree(small_index, index)
    bot = make_bot(
        index_dir=index,
        docs_dir=SMALL_DOCS,
        channel_scopes_file=scopes or scopes_file(tmp_path),
        admin_users=[ADMIN],
        **overrides,
    )
    bot.slack.names.update({EXPERT: "Dana Expert", ASKER: "Alice", OTHER: "Bob", ADMIN: "Ada Admin"})
    return bot


def channel_message(
    bot: Bot, channel: str, user: str, text: str, thread_ts: str | None = None, channel_type: str = "channel"
) -> str:
    """A person posts in a channel (no mention): the `message` event, as message.channels delivers it."""
    ts = bot.slack.add_message(channel, user, text, thread_ts=thread_ts)
    event = message_event(channel, user, text, ts, thread_ts=thread_ts, channel_type=channel_type)
    post_event(bot.url, event_body(event))
    return ts


def mention(
    bot: Bot, channel: str, user: str, text: str, thread_ts: str | None = None, channel_type: str = "channel"
) -> str:
    """A mention as Slack delivers it: the `message` twin (which says the channel's kind), then `app_mention`."""
    said = f"<@{BOT_USER}> {text}".strip()
    ts = bot.slack.add_message(channel, user, said, thread_ts=thread_ts)
    event = message_event(channel, user, said, ts, thread_ts=thread_ts, channel_type=channel_type)
    post_event(bot.url, event_body(event))
    bot.wait_idle()
    post_event(bot.url, event_body(mention_event(channel, user, said, ts, thread_ts)))
    return ts


def drop_unused(bot: Bot, before: int, pushed: int = 1) -> None:
    """Scripted replies the pipeline did not ask for (of `pushed` pushed when the model had had `before`
    requests) are dropped, so they never answer a later question."""
    for _ in range(pushed - (len(bot.llm.bodies) - before)):
        bot.llm.next_responder()


def asked(
    bot: Bot, channel: str, user: str, text: str, reply: list[str] | None = None, channel_type: str = "channel"
) -> Message:
    """`user` mentions the bot with `text` in `channel`; the model answers `reply` (else "not in the docs")
    if the pipeline asks it. Returns the bot's last message in the thread."""
    before = len(bot.llm.bodies)
    bot.llm.push(answer(reply or ["NOT_IN_DOCS"]))
    ts = mention(bot, channel, user, text, channel_type=channel_type)
    found = bot.answer_in(channel, ts)[-1]
    bot.wait_idle()
    drop_unused(bot, before)
    return found


def button(message: Message, block_id: str) -> dict[str, Any]:
    block = next(b for b in message.blocks if b.get("block_id") == block_id)
    element: dict[str, Any] = block["elements"][0]
    return element


def click_on(bot: Bot, message: Message, block_id: str, user: str) -> Delivery:
    """`user` clicks the button of block `block_id` in `message`."""
    element = button(message, block_id)
    payload = block_action_payload(
        element["action_id"],
        element["value"],
        user=user,
        channel=message.channel,
        message_ts=message.ts,
        thread_ts=message.thread_ts,
        response_url=bot.slack.response_url(f"click-{message.ts}"),
        block_id=block_id,
    )
    payload["user"]["name"] = bot.slack.names.get(user, user).lower()
    return post_interaction(bot.url, payload)


def opened_view(bot: Bot, count: int = 1) -> dict[str, Any]:
    """The view of the `count`th views.open call."""
    calls = bot.slack.wait_for(lambda s: len(s.calls_to("views.open")) >= count and s.calls_to("views.open"))
    view = calls[count - 1].args["view"]
    return json.loads(view) if isinstance(view, str) else view


def submit_save(
    bot: Bot, view: dict[str, Any], user: str, question: str | None = None, answer: str | None = None
) -> Delivery:
    """`user` submits the "Save as answer" modal, edited or as it was opened."""
    initial = {b["block_id"]: b["element"].get("initial_value", "") for b in view["blocks"]}
    values = {
        "question": {"question": {"type": "plain_text_input", "value": question or initial["question"]}},
        "answer": {"answer": {"type": "plain_text_input", "value": answer or initial["answer"]}},
    }
    payload = view_submission_payload(view["callback_id"], view["private_metadata"], values, user=user)
    return post_interaction(bot.url, payload)


def slash(bot: Bot, text: str, *, user: str, channel: str) -> Delivery:
    form = command_form(text, user=user, channel=channel, response_url=bot.slack.response_url(f"cmd-{user}"))
    return post_form(bot.url, form)


def ephemerals(bot: Bot, user: str) -> list[str]:
    """The texts of the ephemeral messages the bot showed `user` (chat.postEphemeral)."""
    return [c.args.get("text", "") for c in bot.slack.calls_to("chat.postEphemeral") if c.args.get("user") == user]


def responses(bot: Bot, name: str) -> list[dict[str, Any]]:
    """What the bot sent to the response_url `name` (a slash command's, a click's)."""
    return [c.args for c in bot.slack.calls_to("response_url") if c.args.get("name") == name]


def all_text(message: Message) -> str:
    """A message's text and every block's text, for assertions on what people see."""
    return message.text + "\n" + json.dumps(message.blocks)

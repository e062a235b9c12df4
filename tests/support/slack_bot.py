"""The bot running in this process (HTTP mode, as `qwenbot run --http` serves it) against the fake Slack
and the scripted model, and what tests do with it: ask in a channel or a DM, wait for the answer, click
its buttons. The `make_bot` fixture (tests/support/fixtures.py) builds these."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.runtime import BotRuntime
from bot.settings import Settings, load_settings
from bot.slack.http import HttpServer
from support.fake_openai import FakeOpenAI
from support.fake_slack import (
    BOT_TOKEN,
    BOT_USER,
    SIGNING_SECRET,
    Delivery,
    FakeSlack,
    Message,
    block_action_payload,
    event_body,
    mention_event,
    message_event,
    post_event,
    post_interaction,
)
from support.metrics import Samples, scrape

GENERAL = "C0GENERAL"
HR = "C0HRHELP"  # scoped to hr/ by the bots make_bot builds
QUESTION = "How many vacation days do I get per year?"
VACATION_ANSWER = ["Full-time employees get ", "**25 days** of paid vacation ", "per calendar year [1]."]
EVENTS_PATH = "/slack/events"


@dataclass
class Bot:
    slack: FakeSlack
    llm: FakeOpenAI
    runtime: BotRuntime
    settings: Settings
    url: str  # the Events API endpoint

    def ask(
        self, text: str, *, channel: str = GENERAL, user: str = "U0ALICE", thread_ts: str | None = None, **post: Any
    ) -> tuple[str, Delivery]:
        """Someone mentions the bot; Slack sends app_mention. Returns (message ts, delivery)."""
        ts = self.slack.add_message(channel, user, f"<@{BOT_USER}> {text}", thread_ts=thread_ts)
        event = mention_event(channel, user, f"<@{BOT_USER}> {text}", ts, thread_ts)
        return ts, post_event(self.url, event_body(event), **post)

    def answer_in(self, channel: str, thread_ts: str, count: int = 1, timeout: float = 60) -> list[Message]:
        """Wait for `count` finished answers (a message ending in the feedback buttons) in a thread."""

        def done(s: FakeSlack) -> list[Message]:
            found = [
                m
                for m in s.bot_messages(channel, thread_ts)
                if not m.streaming and m.blocks and m.blocks[-1].get("block_id") == "feedback"
            ]
            return found if len(found) >= count else []

        return self.slack.wait_for(done, timeout)

    def thread_calls(self, channel: str, thread_ts: str) -> list[str]:
        """The Web API methods called for one thread, in order."""
        bot_ts = {m.ts for m in self.slack.bot_messages(channel, thread_ts)}
        out = []
        for c in self.slack.calls:
            a = c.args
            if a.get("channel", a.get("channel_id")) != channel:
                continue
            if a.get("thread_ts") == thread_ts or a.get("ts") in bot_ts or a.get("timestamp") == thread_ts:
                out.append(c.method)
        return out

    def wait_idle(self, timeout: float = 30) -> None:
        """Wait until the bot has nothing queued or running: every listener call that the deliveries so
        far started has finished (Bolt hands a listener to the workers before it acks), so whatever
        they were going to do is done, and a test can assert that nothing more happened."""
        workers = self.runtime.workers
        assert workers.wait_idle(timeout), f"{workers.in_flight} listener calls still busy after {timeout} s"

    def metrics(self) -> Samples:
        """Every sample the bot's /metrics serves now."""
        return scrape(self.url.removesuffix(EVENTS_PATH) + "/metrics")


@contextmanager
def bot_builder(tmp_path: Path, default_index: Callable[[], Path]) -> Iterator[Callable[..., Bot]]:
    """Yields build(slack=None, **settings overrides) -> a running Bot, on the index `default_index()`
    unless `index_dir` is given; every bot, fake and server built is stopped at the end."""
    scopes = tmp_path / "scopes.yml"
    scopes.write_text(f"channels:\n  {HR}:\n    path_prefixes: [hr/]\n")
    with ExitStack() as stack:

        def build(slack: FakeSlack | None = None, **overrides: Any) -> Bot:
            slack = stack.enter_context(slack or FakeSlack())
            llm = stack.enter_context(FakeOpenAI())
            values: dict[str, Any] = {
                "state_db": tmp_path / "state.sqlite3",
                "slack_api_url": slack.api_url,
                "slack_bot_token": BOT_TOKEN,
                "slack_signing_secret": SIGNING_SECRET,
                "llm_base_url": llm.url,
                "llm_api_key": "sk-secret-key-never-shown",
                "llm_retries": 0,
                "channel_scopes_file": scopes,
                "index_on_start": False,  # the shared session index is not this bot's to re-index
                **overrides,
            }
            if "index_dir" not in values:
                values["index_dir"] = default_index()
            settings = load_settings(None, **values)
            runtime = BotRuntime(settings)
            stack.callback(runtime.close)
            server = HttpServer(runtime.app, "127.0.0.1", 0, runtime.health, metrics=runtime.metrics.registry)
            server.start()
            stack.callback(server.stop)
            return Bot(slack, llm, runtime, settings, f"http://127.0.0.1:{server.port}{EVENTS_PATH}")

        yield build


def answer_id(message: Message) -> int:
    """From the feedback under the answer: Slack's feedback_buttons ("up:<id>") or the plain buttons."""
    element = message.blocks[-1]["elements"][0]
    return int(element.get("value", element.get("positive_button", {}).get("value", "")).split(":")[-1])


def click(bot: Bot, action: str, message: Message, user: str) -> Delivery:
    """`user` clicks the plain feedback button `action` under `message`."""
    payload = block_action_payload(
        action,
        message.blocks[-1]["elements"][0]["value"],
        user=user,
        channel=message.channel,
        message_ts=message.ts,
        thread_ts=message.thread_ts,
        response_url=bot.slack.response_url("action"),
    )
    return post_interaction(bot.url, payload)


def ask_in_dm(bot: Bot, user: str, text: str) -> None:
    """`user` asks in their DM with the bot; returns once it is answered."""
    dm = f"D{user[1:]}"
    ts = bot.slack.add_message(dm, user, text)
    post_event(bot.url, event_body(message_event(dm, user, text, ts, channel_type="im")))
    bot.answer_in(dm, ts)


def ask_in_channel(bot: Bot, channel: str, user: str, text: str, channel_type: str) -> None:
    """A mention, as Slack delivers it to a bot subscribed to message.channels / message.groups: the
    `message` event (with channel_type) and the `app_mention` (without); returns once it is answered."""
    said = f"<@{BOT_USER}> {text}"
    ts = bot.slack.add_message(channel, user, said)
    post_event(bot.url, event_body(message_event(channel, user, said, ts, channel_type=channel_type)))
    bot.wait_idle()
    post_event(bot.url, event_body(mention_event(channel, user, said, ts)))
    bot.answer_in(channel, ts)

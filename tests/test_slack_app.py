"""The Slack bot end to end: signed events over real HTTP (and Socket Mode over a real websocket) into
the real app, the real answer pipeline over the indexed docs_corpus, a scripted OpenAI-compatible
model, and a fake Slack Web API that records what the bot did."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from slack_bolt.adapter.socket_mode import SocketModeHandler
from support.docs import one_doc_index
from support.fake_openai import answer, closed_port_url
from support.fake_slack import (
    APP_TOKEN,
    BOT_ID,
    BOT_TOKEN,
    BOT_USER,
    SIGNING_SECRET,
    Delivery,
    FakeSlack,
    FakeSocketMode,
    command_form,
    event_body,
    mention_event,
    message_event,
    post_event,
    post_form,
    post_interaction,
    view_submission_payload,
)
from support.paths import REPO
from support.processes import OutputLines
from support.slack_bot import GENERAL, HR, QUESTION, VACATION_ANSWER, Bot, answer_id, click

from bot import cli
from bot.slack.render.feedback import ACTION_DOWN, ACTION_UP, FEEDBACK_VIEW, REASON_ACTION, REASON_BLOCK
from retrieval.embeddings import Embedder
from retrieval.evaluation import load_questions


def _llm_requests(bot: Bot) -> list[dict[str, Any]]:
    return bot.llm.bodies


def test_mention_gets_status_then_a_streamed_answer_with_sources_and_buttons(make_bot: Callable[..., Bot]) -> None:
    # a workspace that refuses task steps in the stream: the status line shows the stages (task steps:
    # tests/test_slack_native.py)
    bot = make_bot(slack=FakeSlack(refuse_task_chunks=True))
    bot.llm.push(answer(VACATION_ANSWER))
    ts, delivery = bot.ask(QUESTION)
    assert delivery.status == 200 and delivery.seconds < 3  # acked at once, the work runs after
    [message] = bot.answer_in(GENERAL, ts)

    calls = bot.thread_calls(GENERAL, ts)
    assert not bot.slack.calls_to("chat.startStream", ok_only=False)[0].ok  # the one with task chunks
    calls = calls[1:]
    assert calls[:2] == ["assistant.threads.setStatus", "assistant.threads.setStatus"]
    statuses = [c.args["status"] for c in bot.slack.calls_to("assistant.threads.setStatus")]
    assert statuses[0] == "Searching the docs…" and re.fullmatch(r"Reading \d+ documents?…", statuses[1])
    assert calls.index("chat.startStream") < calls.index("chat.stopStream")
    assert calls[-1] == "chat.stopStream"
    assert message.thread_ts == ts  # in a thread under the question
    assert message.text == "".join(VACATION_ANSWER)
    kinds = [b["type"] for b in message.blocks]
    assert kinds == ["markdown", "section", "context_actions"]
    sources = message.blocks[1]["text"]["text"]
    assert sources.startswith("*Sources*") and "<https://wiki.northwind.example/hr/vacation|" in sources
    assert "updated 20" in sources
    # the model was asked with the retrieved vacation policy in its prompt
    prompt = json.dumps(_llm_requests(bot)[0]["messages"])
    assert "vacation" in prompt.lower()
    # stored: the question, the answer and its sources
    assert bot.runtime.state.questions.counts()["answers"] == 1
    assert "hr/vacation.md" in bot.runtime.state.questions.source_paths(answer_id(message))


def test_direct_message_is_answered_in_the_dm(make_bot: Callable[..., Bot]) -> None:
    bot = make_bot()
    bot.llm.push(answer(VACATION_ANSWER))
    dm = "D0ALICE"
    ts = bot.slack.add_message(dm, "U0ALICE", QUESTION)
    delivery = post_event(bot.url, event_body(message_event(dm, "U0ALICE", QUESTION, ts, channel_type="im")))
    assert delivery.status == 200
    [message] = bot.answer_in(dm, ts)
    assert message.channel == dm and "25 days" in message.text


def test_follow_up_in_the_thread_without_a_mention_uses_the_history(make_bot: Callable[..., Bot]) -> None:
    bot = make_bot()
    bot.llm.push(answer(VACATION_ANSWER), answer(["Unused days carry over, up to 5 [1]."]))
    ts, _ = bot.ask(QUESTION)
    bot.answer_in(GENERAL, ts)

    follow_up = "and can I carry unused days over to next year?"
    reply_ts = bot.slack.add_message(GENERAL, "U0ALICE", follow_up, thread_ts=ts)
    post_event(bot.url, event_body(message_event(GENERAL, "U0ALICE", follow_up, reply_ts, thread_ts=ts)))
    answers = bot.answer_in(GENERAL, ts, count=2)
    assert "carry over" in answers[-1].text
    assert bot.slack.calls_to("conversations.replies")[-1].args["ts"] == ts
    messages = _llm_requests(bot)[1]["messages"]
    history = json.dumps(messages)
    assert QUESTION in history and "25 days" in history  # the earlier question and the bot's answer
    assert follow_up in messages[-1]["content"]

    # the bot's own messages and other bots' messages in that thread are not questions
    own_ts = bot.slack.add_message(GENERAL, BOT_USER, "an answer", thread_ts=ts, bot_id=BOT_ID)
    post_event(bot.url, event_body(message_event(GENERAL, BOT_USER, "an answer", own_ts, thread_ts=ts, bot_id=BOT_ID)))
    other_ts = bot.slack.add_message(GENERAL, "U0OTHERBOT", "beep", thread_ts=ts, bot_id="B0OTHER")
    post_event(
        bot.url, event_body(message_event(GENERAL, "U0OTHERBOT", "beep", other_ts, thread_ts=ts, bot_id="B0OTHER"))
    )
    # and a thread the bot never answered is left alone
    top = bot.slack.add_message(GENERAL, "U0BOB", "lunch?")
    reply = bot.slack.add_message(GENERAL, "U0ALICE", "sure", thread_ts=top)
    post_event(bot.url, event_body(message_event(GENERAL, "U0ALICE", "sure", reply, thread_ts=top)))
    bot.wait_idle()
    assert len(_llm_requests(bot)) == 2 and len(bot.slack.bot_messages(GENERAL, top)) == 0


def test_the_same_event_delivered_three_times_is_answered_once_even_after_a_restart(
    make_bot: Callable[..., Bot],
) -> None:
    bot = make_bot()
    bot.llm.push(answer(VACATION_ANSWER))
    ts = bot.slack.add_message(GENERAL, "U0ALICE", f"<@{BOT_USER}> {QUESTION}")
    body = event_body(mention_event(GENERAL, "U0ALICE", f"<@{BOT_USER}> {QUESTION}", ts))
    deliveries = [post_event(bot.url, body, retry_num=n) for n in (None, 1, 2)]
    assert [d.status for d in deliveries] == [200, 200, 200]
    bot.answer_in(GENERAL, ts)
    bot.wait_idle()
    assert len(bot.slack.calls_to("chat.startStream")) == 1 and len(_llm_requests(bot)) == 1

    # a new bot process with the same state file still knows the event
    bot.runtime.close()
    again = make_bot(slack=None, state_db=bot.settings.state_db)
    assert post_event(again.url, body, retry_num=3).status == 200
    again.wait_idle()
    assert not again.slack.calls_to("chat.startStream") and not _llm_requests(again)


def test_bad_signature_is_rejected_and_nothing_is_processed(make_bot: Callable[..., Bot]) -> None:
    bot = make_bot()
    _, delivery = bot.ask(QUESTION, secret="not-the-signing-secret")
    assert delivery.status == 401
    _, unsigned = bot.ask(QUESTION, signature="v0=" + "0" * 64)
    assert unsigned.status == 401
    bot.wait_idle()
    assert set(bot.slack.methods()) <= {"auth.test"} and not _llm_requests(bot)


def test_stale_timestamp_is_rejected(make_bot: Callable[..., Bot]) -> None:
    bot = make_bot()
    _, delivery = bot.ask(QUESTION, timestamp=int(time.time()) - 10 * 60)  # a replayed request
    assert delivery.status == 401
    bot.wait_idle()
    assert set(bot.slack.methods()) <= {"auth.test"} and not _llm_requests(bot)


def test_disallowed_channel_gets_a_notice_and_no_answer(make_bot: Callable[..., Bot]) -> None:
    bot = make_bot(allowed_channels=[HR])
    ts, _ = bot.ask(QUESTION, channel="C0RANDOM")
    [notice] = bot.slack.wait_for(lambda s: s.calls_to("chat.postEphemeral"))
    assert notice.args["user"] == "U0ALICE" and "not enabled in this channel" in notice.args["text"]
    bot.wait_idle()
    assert not _llm_requests(bot) and not bot.slack.calls_to("assistant.threads.setStatus")
    assert not bot.slack.bot_messages("C0RANDOM")


def test_a_scoped_channel_never_retrieves_outside_its_scope(make_bot: Callable[..., Bot]) -> None:
    bot = make_bot()
    vpn = "How do I connect to the VPN from home?"
    bot.llm.push(answer(["Use the client [1]."]), answer(["Use the client [1]."]))
    ts_general, _ = bot.ask(vpn, channel=GENERAL)
    [general] = bot.answer_in(GENERAL, ts_general)

    assert any(p.startswith("it-security/") for p in bot.runtime.state.questions.source_paths(answer_id(general)))

    ts_hr, _ = bot.ask(vpn, channel=HR, user="U0BOB")
    [scoped] = bot.answer_in(HR, ts_hr)
    paths = bot.runtime.state.questions.source_paths(answer_id(scoped))
    assert paths and all(p.startswith("hr/") for p in paths)
    # the model was asked both times, so its prompt can be checked: no passage from outside hr/
    assert len(_llm_requests(bot)) == 2
    prompt = "\n".join(m["content"] for m in _llm_requests(bot)[-1]["messages"])
    outside = [h for h in bot.runtime.searcher.search(vpn, k=10) if not h.path.startswith("hr/")]
    assert outside and not any(h.text[:80] in prompt for h in outside)


def test_pings_and_links_in_model_output_are_neutralised(make_bot: Callable[..., Bot]) -> None:
    bot = make_bot()
    bot.llm.push(
        answer(
            [
                "Heads up <!chan",
                "nel> and <!here>: ask <@U0BOSS> or <!subteam^S0HR|@hr>, ",
                "see <https://evil.example/x|the policy> [1].",
            ]
        )
    )
    ts, _ = bot.ask(QUESTION)
    [message] = bot.answer_in(GENERAL, ts)
    everything = json.dumps([c.args for c in bot.slack.calls])
    for token in ("<!channel>", "<!here>", "<@U0BOSS>", "<!subteam", "<https://evil.example"):
        assert token not in everything
    assert "@\u2060channel" in message.text and "the policy (https://evil.example/x)" in message.text


def test_model_down_gives_the_extractive_fallback_plainly(make_bot: Callable[..., Bot]) -> None:
    bot = make_bot(llm_base_url=closed_port_url())
    ts, _ = bot.ask(QUESTION)
    [message] = bot.answer_in(GENERAL, ts)
    assert "Model unavailable" in message.text and ">" in message.text  # quoted passages
    assert "*Sources*" in message.blocks[1]["text"]["text"]


def test_slack_429_on_an_update_is_retried_and_the_final_answer_delivered(make_bot: Callable[..., Bot]) -> None:
    bot = make_bot(slack=FakeSlack(refuse_streaming=True))
    bot.llm.push(answer(VACATION_ANSWER))
    bot.slack.fail("chat.update", "ratelimited", status=429, retry_after=1)
    ts, _ = bot.ask(QUESTION)
    [message] = bot.answer_in(GENERAL, ts)
    updates = bot.slack.calls_to("chat.update", ok_only=False)
    assert not updates[0].ok and updates[-1].ok
    assert updates[1].at - updates[0].at >= 0.9
    assert message.text == "".join(VACATION_ANSWER)
    placeholder = bot.slack.calls_to("chat.postMessage")[0].args
    assert placeholder["unfurl_links"] is False and placeholder["unfurl_media"] is False


def test_twenty_mentions_at_once_get_twenty_answers(make_bot: Callable[..., Bot]) -> None:
    bot = make_bot()
    n = 20
    bot.llm.push(*[answer(VACATION_ANSWER) for _ in range(n)])
    questions: dict[str, str] = {}  # channel: the question's ts
    bodies = []
    for i in range(n):
        channel, user, text = f"C0TEAM{i:02d}", f"U0USER{i:02d}", f"<@{BOT_USER}> {QUESTION}"
        questions[channel] = bot.slack.add_message(channel, user, text)
        bodies.append(event_body(mention_event(channel, user, text, questions[channel])))
    at_once = threading.Barrier(n)  # all twenty connect in the same instant, as a burst from Slack would
    deliveries: list[Delivery] = []
    failures: list[BaseException] = []

    def deliver(body: dict[str, Any]) -> None:
        at_once.wait(timeout=30)
        try:
            deliveries.append(post_event(bot.url, body))
        except Exception as exc:  # e.g. a connection reset: the bot's listen backlog is too short
            failures.append(exc)

    senders = [threading.Thread(target=deliver, args=(body,)) for body in bodies]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join()
    assert not failures
    assert len(deliveries) == n and all(d.status == 200 and d.seconds < 3 for d in deliveries)
    for channel, ts in questions.items():
        bot.answer_in(channel, ts, timeout=120)
    bot.wait_idle()
    assert len(_llm_requests(bot)) == n
    for channel, ts in questions.items():  # exactly one answer each
        assert [m.thread_ts for m in bot.slack.bot_messages(channel)] == [ts]


def test_rate_limited_user_gets_a_polite_reply(make_bot: Callable[..., Bot]) -> None:
    bot = make_bot(rate_limit_per_minute=1)
    bot.llm.push(answer(VACATION_ANSWER))
    ts, _ = bot.ask(QUESTION, user="U0EAGER")
    bot.answer_in(GENERAL, ts)
    bot.ask("and sick days?", user="U0EAGER")
    [notice] = bot.slack.wait_for(lambda s: s.calls_to("chat.postEphemeral"))
    assert notice.args["user"] == "U0EAGER" and "wait about" in notice.args["text"]
    bot.wait_idle()
    assert len(_llm_requests(bot)) == 1


def test_an_error_ends_in_an_apology_with_an_error_id_that_is_logged(
    make_bot: Callable[..., Bot], caplog: pytest.LogCaptureFixture
) -> None:
    bot = make_bot()
    bot.llm.push(answer(VACATION_ANSWER))
    # twice: a refused stopStream with task steps is retried once without them (tests/test_slack_native.py)
    bot.slack.fail("chat.stopStream", "internal_error", times=2)
    with caplog.at_level(logging.ERROR, logger="bot.slack.answering"):
        ts, _ = bot.ask(QUESTION)
        apology = bot.slack.wait_for(lambda s: [m for m in s.bot_messages(GENERAL, ts) if "Sorry" in m.text])
    found = re.search(r"error id `(\w+)`", apology[0].text)
    assert found, apology[0].text
    assert any(found.group(1) in r.getMessage() for r in caplog.records)


def test_thumbs_up_and_down_with_a_reason_are_stored_and_exported(
    make_bot: Callable[..., Bot], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bot = make_bot(feedback_style="buttons")  # the plain buttons (Slack's feedback_buttons: test_slack_native)
    bot.llm.push(answer(VACATION_ANSWER))
    ts, _ = bot.ask(QUESTION)
    [message] = bot.answer_in(GENERAL, ts)

    assert click(bot, ACTION_UP, message, "U0BOB").status == 200
    bot.slack.wait_for(lambda s: s.calls_to("chat.postEphemeral"))
    [up] = list(bot.runtime.state.feedback.records("up"))
    assert (up.user, up.question) == ("U0BOB", QUESTION)

    assert click(bot, ACTION_DOWN, message, "U0CAROL").status == 200
    [opened] = bot.slack.wait_for(lambda s: s.calls_to("views.open"))
    view = opened.args["view"]
    view = json.loads(view) if isinstance(view, str) else view
    assert view["callback_id"] == FEEDBACK_VIEW
    values = {REASON_BLOCK: {REASON_ACTION: {"type": "plain_text_input", "value": "It's 30 days since 2026"}}}
    submitted = post_interaction(
        bot.url, view_submission_payload(FEEDBACK_VIEW, view["private_metadata"], values, user="U0CAROL")
    )
    assert submitted.status == 200
    thanks = json.loads(submitted.body)  # the modal says it was noted (before: it closed without a word)
    assert thanks["response_action"] == "update" and "Thanks, noted" in json.dumps(thanks["view"])
    [down] = list(bot.runtime.state.feedback.records("down"))
    assert (down.user, down.reason) == ("U0CAROL", "It's 30 days since 2026")

    out = tmp_path / "thumbs_down.jsonl"
    monkeypatch.setenv("QWENBOT_STATE_DB", str(bot.settings.state_db))
    assert cli.main(["--env-file", os.devnull, "feedback", "export", "-o", str(out)]) == 0
    [line] = [json.loads(x) for x in out.read_text().splitlines()]
    assert line["question"] == QUESTION and line["sources"] == [] and line["reason"] == "It's 30 days since 2026"
    assert "hr/vacation.md" in line["bot_sources"] and "25 days" in line["bot_answer"]
    [question] = load_questions(out)  # the eval set reads it as is (sources to fill in by a person)
    assert question.question == QUESTION


def test_slash_command_status_and_help(make_bot: Callable[..., Bot]) -> None:
    bot = make_bot()
    helped = post_form(
        bot.url, command_form("help", user="U0ALICE", channel=GENERAL, response_url=bot.slack.response_url("help"))
    )
    assert helped.status == 200 and "/qwenbot status" in json.loads(helped.body)["text"]
    assert "Unknown" not in json.loads(helped.body)["text"]
    typo = post_form(
        bot.url, command_form("stauts now", user="U0ALICE", channel=GENERAL, response_url=bot.slack.response_url("x"))
    )
    text = json.loads(typo.body)["text"]  # before: the help alone
    assert text.startswith("Unknown command 'stauts'.") and "/qwenbot status" in text

    status = post_form(
        bot.url, command_form("status", user="U0ALICE", channel=GENERAL, response_url=bot.slack.response_url("status"))
    )
    assert status.status == 200 and status.seconds < 3
    [reply] = bot.slack.wait_for(lambda s: s.calls_to("response_url"))
    text = reply.args["text"]
    assert bot.settings.llm_base_url
    host = bot.settings.llm_base_url.split("//")[1].split("/")[0]
    info = bot.runtime.index_info()
    assert info.documents > 40 and f"{info.documents:,} documents in {info.chunks:,} chunks" in text
    assert "last indexed 20" in text
    assert f"`{host}`: reachable" in text and "healthy" in text
    assert "sk-secret" not in text and "/v1" not in text


def test_healthz(make_bot: Callable[..., Bot]) -> None:
    bot = make_bot()
    with urllib.request.urlopen(bot.url.replace("/slack/events", "/healthz"), timeout=5) as resp:
        report = json.loads(resp.read())
    assert resp.status == 200 and report["ok"]
    assert report["index_documents"] == bot.runtime.index_info().documents > 40


def test_socket_mode_acks_answers_and_ignores_the_retry(make_bot: Callable[..., Bot]) -> None:
    bot = make_bot(slack_app_token=APP_TOKEN)
    bot.llm.push(answer(VACATION_ANSWER))
    with FakeSocketMode() as socket_server:
        bot.slack.ws_url = socket_server.url
        handler = SocketModeHandler(bot.runtime.app, APP_TOKEN)
        handler.connect()
        try:
            ts = bot.slack.add_message(GENERAL, "U0ALICE", f"<@{BOT_USER}> {QUESTION}")
            body = event_body(mention_event(GENERAL, "U0ALICE", f"<@{BOT_USER}> {QUESTION}", ts))
            socket_server.send_event(body, envelope_id="env-1")
            socket_server.wait_ack("env-1")
            [message] = bot.answer_in(GENERAL, ts)
            socket_server.send_event(body, envelope_id="env-2", retry_attempt=1)
            socket_server.wait_ack("env-2")  # acked after Bolt handed the retry to the workers
            bot.wait_idle()
        finally:
            handler.close()
    assert "25 days" in message.text
    assert bot.slack.calls_to("apps.connections.open")[0].token == APP_TOKEN
    assert len(_llm_requests(bot)) == 1 and len(bot.slack.bot_messages(GENERAL, ts)) == 1


def test_a_question_the_docs_do_not_cover_is_said_plainly(make_bot: Callable[..., Bot]) -> None:
    bot = make_bot()
    ts, _ = bot.ask("What is the airspeed velocity of an unladen swallow?")
    [message] = bot.answer_in(GENERAL, ts)
    assert message.text.startswith("I couldn't find this in the documentation")
    assert message.blocks[1]["text"]["text"].startswith("*Closest documents*")
    assert not _llm_requests(bot)  # the model is not asked to answer from nothing


def test_run_says_which_credential_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET"):
        monkeypatch.delenv(name, raising=False)
    env = os.devnull
    assert cli.main(["--env-file", env, "run"]) == 2
    assert "SLACK_BOT_TOKEN is not set" in capsys.readouterr().err
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    assert cli.main(["--env-file", env, "run"]) == 2
    assert "SLACK_APP_TOKEN is not set" in capsys.readouterr().err
    assert cli.main(["--env-file", env, "run", "--http"]) == 2
    err = capsys.readouterr().err
    assert "SLACK_SIGNING_SECRET is not set" in err and BOT_TOKEN not in err


def test_the_running_bot_reindexes_its_docs_folder_in_process(
    make_bot: Callable[..., Bot], tmp_path: Path, embedder: Embedder
) -> None:

    docs, index_dir = one_doc_index(tmp_path, embedder)
    bot = make_bot(index_dir=index_dir, docs_dir=docs, reindex_interval_minutes=0.01)
    assert bot.runtime.index_info().documents == 1
    (docs / "lunch.md").write_text("# Lunch\n\nLunch is served at noon on Fridays in the atrium.\n")
    deadline = time.monotonic() + 60
    while bot.runtime.index_info().documents < 2:  # the bot holds the index lock and indexes itself
        assert time.monotonic() < deadline, "the new document was never indexed"
        time.sleep(0.1)
    assert bot.runtime.indexing.last_error is None
    assert any(h.path == "lunch.md" for h in bot.runtime.searcher.search("when is lunch served", k=3))


@pytest.mark.slow
def test_qwenbot_run_http_serves_slack_and_healthz_and_stops_on_sigterm(tmp_path: Path, embedder: Embedder) -> None:
    docs, index_dir = one_doc_index(tmp_path, embedder)
    with FakeSlack() as slack:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("QWENBOT_", "SLACK_"))}
        env.update(
            {
                "SLACK_BOT_TOKEN": BOT_TOKEN,
                "SLACK_SIGNING_SECRET": SIGNING_SECRET,
                "QWENBOT_SLACK_API_URL": slack.api_url,
                "QWENBOT_INDEX_DIR": str(index_dir),
                "QWENBOT_DOCS_DIR": str(docs),
                "QWENBOT_STATE_DB": str(tmp_path / "state.sqlite3"),
            }
        )
        command = [
            sys.executable,
            "-m",
            "bot.cli",
            "--env-file",
            os.devnull,
            "run",
            "--http",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
        ]
        proc = subprocess.Popen(command, cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
        assert proc.stderr is not None
        stderr = OutputLines(proc.stderr)
        try:
            port = stderr.wait_for(r"Events API on http://127.0.0.1:(\d+)/", timeout=90).group(1)
            base = f"http://127.0.0.1:{port}"
            with urllib.request.urlopen(f"{base}/healthz", timeout=5) as resp:
                assert resp.status == 200 and json.loads(resp.read())["index_documents"] == 1
            helped = post_form(
                f"{base}/slack/events",
                command_form("help", user="U0ALICE", channel=GENERAL, response_url=slack.response_url("help")),
            )
            assert helped.status == 200 and "/qwenbot status" in json.loads(helped.body)["text"]
            unsigned = post_form(
                f"{base}/slack/events",
                command_form("help", user="U0ALICE", channel=GENERAL, response_url=slack.response_url("help")),
                secret="wrong",
            )
            assert unsigned.status == 401
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        log = stderr.all(timeout=10)
        assert BOT_TOKEN not in log and SIGNING_SECRET not in log


def test_a_follow_up_in_a_slack_thread_is_searched_with_its_thread(make_bot: Callable[..., Bot]) -> None:
    bot = make_bot(query_rewrite="model")
    vpn = "How do I connect to the VPN from home?"
    bot.llm.push(
        answer(["Install Tailscale from Self Service and sign in with Okta [1]."]),
        answer("Can I use the Tailscale VPN on my personal iPad?"),  # the follow-up, rewritten
        answer(["No, personal devices cannot join [1]."]),
    )
    ts, _ = bot.ask(vpn)
    bot.answer_in(GENERAL, ts)
    follow_up = "does it work on my personal ipad?"  # alone, it finds nothing about the VPN
    reply_ts = bot.slack.add_message(GENERAL, "U0ALICE", follow_up, thread_ts=ts)
    post_event(bot.url, event_body(message_event(GENERAL, "U0ALICE", follow_up, reply_ts, thread_ts=ts)))
    answers = bot.answer_in(GENERAL, ts, count=2)
    assert "personal devices" in answers[-1].text

    first, rewrite, second = _llm_requests(bot)
    assert first["stream"] and len(first["messages"]) == 2  # a first question: no rewrite call
    # the rewrite saw the thread: the question, and the bot's answer as a short turn with what it cited
    thread = rewrite["messages"][-1]["content"]
    assert vpn in thread and "Sources: VPN Guide (Tailscale)" in thread and follow_up in thread
    # and the answer was written from the VPN guide, found through the thread
    assert "it-security/vpn-guide.md" in second["messages"][-1]["content"]
    assert "it-security/vpn-guide.md" in bot.runtime.state.questions.source_paths(answer_id(answers[-1]))

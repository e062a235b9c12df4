"""Still need help? -> the experts reply -> Save as answer -> the next question in the scope is answered
from the saved answer, citing its author and thread; never in another scope; removed and expired
answers. All over the fake Slack, with signed events and interactions, on a bot with its own index."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from support.fake_slack import Message
from support.knowledge import (
    ADMIN,
    ASKER,
    ENGINEERING,
    EXPERT,
    GENERAL,
    HR,
    HR_EXPERTS,
    HR_TOO,
    OTHER,
    all_text,
    asked,
    channel_message,
    click_on,
    ephemerals,
    knowledge_bot,
    opened_view,
    submit_save,
)
from support.slack_bot import Bot

QUESTION = "Which badge colour do contractors get at reception?"
EXPERT_REPLY = "Contractors get a green badge at reception; bring your contract on the first day."
MARKER = "green badge"


def _prompt_since(bot: Bot, count: int) -> str:
    return json.dumps(bot.llm.bodies[count:])


def _escalate_and_save(bot: Bot) -> tuple[Message, Message]:
    """The whole loop in HR: asked, not in the docs, escalated, an expert replies and saves it.
    Returns (the bot's answer, the "Saved" notice)."""
    first = asked(bot, HR, ASKER, QUESTION)
    assert "escalate" in [b.get("block_id") for b in first.blocks]
    assert click_on(bot, first, "escalate", ASKER).status == 200
    bot.wait_idle()
    posts = [m for m in bot.slack.bot_messages(HR, first.thread_ts) if f"<!subteam^{HR_EXPERTS}>" in all_text(m)]
    assert len(posts) == 1
    channel_message(bot, HR, EXPERT, EXPERT_REPLY, thread_ts=first.thread_ts)
    offer = bot.slack.wait_for(
        lambda s: [m for m in s.bot_messages(HR, first.thread_ts) if "learned_offer" in all_text(m)]
    )[0]
    assert click_on(bot, offer, "learned_offer", EXPERT).status == 200
    view = opened_view(bot)
    assert QUESTION in json.dumps(view) and EXPERT_REPLY in json.dumps(view)
    assert submit_save(bot, view, EXPERT).status == 200
    saved = bot.slack.wait_for(
        lambda s: [m for m in s.bot_messages(HR, first.thread_ts) if "learned_remove" in all_text(m)]
    )[0]
    bot.wait_idle()
    return first, saved


@pytest.mark.slow
def test_an_expert_answer_saved_in_an_escalated_thread_answers_the_next_question_in_its_scope_only(
    make_bot: Callable[..., Bot], tmp_path: Path, small_index: Path
) -> None:
    bot = knowledge_bot(make_bot, tmp_path, small_index)
    first, saved = _escalate_and_save(bot)
    assert any("called in" in t for t in ephemerals(bot, ASKER))  # the asker is thanked
    # escalated once only, and the bot left the expert's reply to the people in the thread
    assert click_on(bot, first, "escalate", ASKER).status == 200
    bot.wait_idle()
    assert any("already" in t for t in ephemerals(bot, ASKER))
    thread = bot.slack.bot_messages(HR, first.thread_ts)
    assert len([m for m in thread if "subteam" in all_text(m)]) == 1
    assert len([m for m in thread if m.blocks and m.blocks[-1].get("block_id") == "feedback"]) == 1
    assert "Dana Expert" in all_text(saved) and "<@" not in all_text(saved)

    # another thread, another channel of the same scope: answered from the saved answer, citing it
    count = len(bot.llm.bodies)
    cited = asked(bot, HR_TOO, OTHER, QUESTION, ["Contractors get a ", "green badge at reception [1]."])
    assert MARKER in _prompt_since(bot, count)
    shown = all_text(cited)
    assert "answered by Dana Expert" in shown
    assert f"https://fake.slack.com/archives/{HR}/p{str(first.thread_ts).replace('.', '')}" in shown

    # the same question where the scope differs: the saved answer is never read, never cited
    for channel in (ENGINEERING, GENERAL):
        count = len(bot.llm.bodies)
        elsewhere = asked(bot, channel, OTHER, QUESTION)
        assert MARKER not in _prompt_since(bot, count), channel
        assert "Dana" not in all_text(elsewhere) and "learned/" not in all_text(elsewhere), channel


@pytest.mark.slow
def test_only_an_expert_or_an_admin_saves_and_a_removed_answer_is_no_longer_cited(
    make_bot: Callable[..., Bot], tmp_path: Path, small_index: Path
) -> None:
    bot = knowledge_bot(make_bot, tmp_path, small_index)
    first = asked(bot, HR, ASKER, QUESTION)
    click_on(bot, first, "escalate", ASKER)
    bot.wait_idle()
    channel_message(bot, HR, ASKER, "Anyone? I start Monday.", thread_ts=first.thread_ts)  # the asker: no offer
    bot.wait_idle()
    assert not [m for m in bot.slack.bot_messages(HR, first.thread_ts) if "learned_offer" in all_text(m)]
    channel_message(bot, HR, EXPERT, EXPERT_REPLY, thread_ts=first.thread_ts)
    channel_message(bot, HR, EXPERT, "And a lanyard.", thread_ts=first.thread_ts)  # one offer per thread
    bot.wait_idle()
    offers = [m for m in bot.slack.bot_messages(HR, first.thread_ts) if "learned_offer" in all_text(m)]
    assert len(offers) == 1
    click_on(bot, offers[0], "learned_offer", OTHER)  # neither replied nor an admin
    bot.wait_idle()
    assert not bot.slack.calls_to("views.open") and any("Only the people" in t for t in ephemerals(bot, OTHER))
    click_on(bot, offers[0], "learned_offer", ADMIN)
    view = opened_view(bot)
    submit_save(bot, view, ADMIN, answer="Contractors wear a green badge, given at reception.")
    saved = bot.slack.wait_for(
        lambda s: [m for m in s.bot_messages(HR, first.thread_ts) if "learned_remove" in all_text(m)]
    )[0]
    bot.wait_idle()
    [learned] = bot.runtime.state.knowledge.learned_answers()
    assert (learned.author, learned.saved_by, learned.scope != "default") == (EXPERT, ADMIN, True)

    click_on(bot, saved, "learned_remove", OTHER)  # not theirs
    bot.wait_idle()
    assert bot.runtime.state.knowledge.learned(learned.id).status == "active"  # type: ignore[union-attr]
    click_on(bot, saved, "learned_remove", EXPERT)
    bot.slack.wait_for(lambda s: "removed" in s.messages[(HR, saved.ts)].text.lower())
    bot.wait_idle()
    count = len(bot.llm.bodies)
    asked(bot, HR_TOO, OTHER, QUESTION)
    assert MARKER not in _prompt_since(bot, count)


@pytest.mark.slow
def test_an_expired_learned_answer_is_archived_labelled_and_still_found(
    make_bot: Callable[..., Bot], tmp_path: Path, small_index: Path
) -> None:
    bot = knowledge_bot(make_bot, tmp_path, small_index, learned_expiry_days=30)
    _escalate_and_save(bot)
    [learned] = bot.runtime.state.knowledge.learned_answers()
    assert learned.expires is not None and 29 * 86400 < learned.expires - time.time() <= 30 * 86400
    assert bot.runtime.state.knowledge.expire(now=learned.expires + 1) == [learned.id]
    assert bot.runtime.learned.refresh()  # what each replica's keep-up loop does every minute
    mirror = bot.runtime.learned.config.mirror
    [file] = list(mirror.rglob("*.md"))
    assert "status: archived" in file.read_text()
    count = len(bot.llm.bodies)
    # demoted below the current docs, and marked outdated for the model, as archived docs are
    cited = asked(bot, HR_TOO, OTHER, QUESTION, ["It used to be a green badge [3]."])
    prompt = _prompt_since(bot, count)
    assert "answered by Dana Expert" in prompt and "ARCHIVED" in prompt
    assert "answered by Dana Expert" in all_text(cited)
    assert "archived" in all_text(cited).lower()

"""Suggested prompts never show one person's question to another: end to end over the fake Slack, the
questions are asked as Slack sends them (an `app_mention` and, through message.channels /
message.groups, its `message` twin that says whether the channel is public; DMs as message.im), and
what the bot offers a fourth person in `assistant.threads.setSuggestedPrompts` is checked."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support.fake_openai import answer
from support.fake_slack import (
    assistant_thread_event,
    event_body,
    post_event,
)
from support.slack_bot import GENERAL, Bot, ask_in_channel, ask_in_dm

from bot.slack.policy import Policy, PolicyError, RateLimiter, load_channel_scopes
from bot.state.questions import QuestionPool

HR_PRIVATE = "C0HRCASES"  # a private channel: its id starts with C like any other
ENGINEERING = "C0ENGINEER"
ENG_ONCALL = "C0ONCALL01"
ENG_QUIET = "C0ENGQUIET"  # engineering scope, but does not share its questions
PRIVATE_QUESTIONS = {
    "U0ANNA": "what can I do about my manager Bob harassing me?",
    "U0BEN": "how do I report a lost laptop after my arrest?",
}
HR_QUESTION = "how many vacation days do I get before my layoff in March?"
CONFIGURED = "How do I set up the VPN?"


def _scopes(tmp_path: Path, *, default_shares: bool) -> Path:
    path = tmp_path / "privacy_scopes.yml"
    path.write_text(
        f"""
default:
  suggested_prompts: ["{CONFIGURED}"]
  share_questions: {"true" if default_shares else "false"}
channels:
  {HR_PRIVATE}:
    path_prefixes: [hr/]
    share_questions: true
  {ENGINEERING}:
    path_prefixes: [engineering/]
    share_questions: true
  {ENG_ONCALL}:
    path_prefixes: [engineering/]
    share_questions: true
  {ENG_QUIET}:
    path_prefixes: [engineering/]
"""
    )
    return path


def offered(bot: Bot, user: str, viewing: str | None) -> list[str]:
    """The prompts offered to `user` opening the assistant container while viewing `viewing`."""
    dm = f"D{user[1:]}"
    root = bot.slack.add_message(dm, user, "New chat")
    event = assistant_thread_event("assistant_thread_started", dm, root, user, viewing)
    assert post_event(bot.url, event_body(event)).status == 200
    bot.wait_idle()
    calls = [c for c in bot.slack.calls_to("assistant.threads.setSuggestedPrompts") if c.args["thread_ts"] == root]
    prompts: list[Any] = []
    for call in calls:
        given = call.args["prompts"]
        prompts += json.loads(given) if isinstance(given, str) else given
    return [p["message"] for p in prompts]


@pytest.mark.parametrize(
    "overrides",
    [
        {},  # the defaults: the setup
        # even where one asker would be enough and the default scope shares, private stays private
        {"suggest_min_askers": 1, "default_shares": True},
    ],
    ids=["defaults", "one-asker-enough"],
)
def test_dm_and_private_channel_questions_never_reach_anothers_suggested_prompts(
    make_bot: Callable[..., Bot],
    tmp_path: Path,
    overrides: dict[str, Any],
) -> None:
    settings = {k: v for k, v in overrides.items() if k != "default_shares"}
    scopes = _scopes(tmp_path, default_shares=bool(overrides.get("default_shares")))
    bot = make_bot(channel_scopes_file=scopes, **settings)
    private = [*PRIVATE_QUESTIONS.values(), HR_QUESTION]
    for _ in private:
        bot.llm.push(answer(["Here is what the policy says [1]."]))
    for user, text in PRIVATE_QUESTIONS.items():
        ask_in_dm(bot, user, text)
    ask_in_channel(bot, HR_PRIVATE, "U0CLARA", HR_QUESTION, "group")

    for viewing in (GENERAL, ENGINEERING, None):
        prompts = offered(bot, "U0DAVE", viewing)
        assert not set(prompts) & set(private), (viewing, prompts)
        assert CONFIGURED in prompts or viewing == ENGINEERING  # the default scope's configured prompt


def test_a_question_asked_by_enough_people_in_a_shared_public_scope_is_suggested(
    make_bot: Callable[..., Bot],
    tmp_path: Path,
) -> None:
    bot = make_bot(channel_scopes_file=_scopes(tmp_path, default_shares=False))
    pager = "How do I hand over the on-call pager?"
    freeze = "When does the release freeze start?"
    postmortem = "How do I write a postmortem?"
    asked = [
        (ENGINEERING, "U0ANNA", pager),
        (ENG_ONCALL, "U0BEN", pager),
        (ENGINEERING, "U0CLARA", pager.lower()),  # the same question, any case
        (ENGINEERING, "U0ANNA", freeze),  # two people only
        (ENG_ONCALL, "U0BEN", freeze),
        (ENGINEERING, "U0ANNA", freeze),  # the same person again does not count twice
        (ENG_QUIET, "U0ANNA", postmortem),  # three people, in a channel that does not share
        (ENG_QUIET, "U0BEN", postmortem),
        (ENG_QUIET, "U0CLARA", postmortem),
    ]
    for channel, user, text in asked:
        bot.llm.push(answer(["See the handbook [1]."]))
        ask_in_channel(bot, channel, user, text, "channel")

    in_oncall = offered(bot, "U0DAVE", ENG_ONCALL)
    assert pager in in_oncall and freeze not in in_oncall and postmortem not in in_oncall
    in_quiet = offered(bot, "U0DAVE", ENG_QUIET)  # its own questions only
    assert postmortem in in_quiet and pager not in in_quiet
    assert pager not in offered(bot, "U0DAVE", GENERAL)  # another scope


def test_which_channels_share_their_questions_with_the_viewed_one(tmp_path: Path) -> None:
    def pool(default_shares: bool, viewing: str | None) -> QuestionPool:
        scopes = load_channel_scopes(_scopes(tmp_path, default_shares=default_shares))
        return Policy(frozenset(), scopes, RateLimiter(0, None)).question_pool(viewing)  # type: ignore[arg-type]

    assert pool(False, ENG_ONCALL) == QuestionPool(ENG_ONCALL, public_in=(ENGINEERING, ENG_ONCALL))
    assert pool(False, ENG_QUIET) == QuestionPool(ENG_QUIET)  # same docs, but it does not share
    assert pool(False, HR_PRIVATE) == QuestionPool(HR_PRIVATE, public_in=(HR_PRIVATE,))  # public ones only
    assert pool(False, GENERAL) == QuestionPool(GENERAL) and pool(False, None) == QuestionPool()
    listed = tuple(sorted((ENG_ONCALL, ENGINEERING, ENG_QUIET, HR_PRIVATE)))
    assert pool(True, GENERAL) == QuestionPool(GENERAL, public_outside=listed)
    assert pool(True, None) == QuestionPool(None, public_outside=listed)


def test_share_questions_takes_true_or_false_only(tmp_path: Path) -> None:
    path = tmp_path / "bad_scopes.yml"
    path.write_text(f"channels:\n  {ENGINEERING}:\n    share_questions: yes please\n")
    with pytest.raises(PolicyError, match=f"channels.{ENGINEERING}.share_questions: expected true or false"):
        load_channel_scopes(path)

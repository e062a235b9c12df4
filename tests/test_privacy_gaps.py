"""The knowledge-gap report keeps private conversations private: questions are asked end to end as
Slack sends them (a DM, a mention in a private channel, mentions in public ones with their `message`
twins), then `qwenbot gaps` and the digest are read. By default only public channels' questions are
shown, each group with its channel, and nearest documents come from that channel's scope."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support.slack_bot import GENERAL, Bot, ask_in_channel, ask_in_dm

from bot import cli
from bot.gaps.digest import GapDigest

HR_PUBLIC = "C0HRPUBLIC"  # public, scoped to hr/
FALCON = "C0FALCON01"  # a private channel
ADMINS = "C0ADMINS1"
FALCON_QUESTION = "is the secret Project Falcon acquisition of Initech confirmed?"
DM_QUESTION = "will the Falcon deal cost me my job at Initech?"
PUBLIC_QUESTION = "What is the airspeed velocity of an unladen swallow?"
HR_QUESTION = "How do I configure the VPN client on my phone?"  # the VPN guide is outside hr/


@pytest.fixture
def asked(make_bot: Callable[..., Bot], tmp_path: Path) -> Bot:
    """A bot whose state holds four unanswered questions: in a DM, a private channel, a public
    channel of the default scope, and a public channel scoped to hr/."""
    scopes = tmp_path / "gap_privacy_scopes.yml"
    scopes.write_text(f"channels:\n  {HR_PUBLIC}:\n    path_prefixes: [hr/]\n")
    bot = make_bot(channel_scopes_file=scopes, gaps_channel=ADMINS)
    ask_in_dm(bot, "U0ANNA", DM_QUESTION)
    ask_in_channel(bot, FALCON, "U0BEN", FALCON_QUESTION, "group")
    ask_in_channel(bot, GENERAL, "U0CLARA", PUBLIC_QUESTION, "channel")
    ask_in_channel(bot, HR_PUBLIC, "U0DAVE", HR_QUESTION, "channel")
    now = time.time()
    modes = {q.text: q.not_found for q in bot.runtime.state.gaps.unanswered(now - 60, now + 60, "all")}
    assert modes == dict.fromkeys((DM_QUESTION, FALCON_QUESTION, PUBLIC_QUESTION, HR_QUESTION), True)
    return bot


def _gaps(bot: Bot, env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    env.setenv("QWENBOT_STATE_DB", str(bot.settings.state_db))
    env.setenv("QWENBOT_INDEX_DIR", str(bot.settings.index_dir))
    env.setenv("QWENBOT_CHANNEL_SCOPES_FILE", str(bot.settings.channel_scopes_file))
    capsys.readouterr()
    assert cli.main(["--env-file", "/dev/null", "gaps", "--json"]) == 0
    out: dict[str, Any] = json.loads(capsys.readouterr().out)
    return out


def test_qwenbot_gaps_shows_public_channels_only_with_their_channel_and_in_scope_docs(
    asked: Bot, no_settings: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = _gaps(asked, no_settings, tmp_path, capsys)
    by_question = {g["example"]: g for g in report["groups"]}
    assert set(by_question) == {PUBLIC_QUESTION, HR_QUESTION}, by_question.keys()
    assert "Falcon" not in json.dumps(report)
    assert by_question[PUBLIC_QUESTION]["channel"] == GENERAL and by_question[HR_QUESTION]["channel"] == HR_PUBLIC
    hr_docs = [d["path"] for d in by_question[HR_QUESTION]["documents"]]
    assert hr_docs and all(p.startswith("hr/") for p in hr_docs), hr_docs  # not the VPN guide

    assert cli.main(["--env-file", "/dev/null", "gaps"]) == 0
    text = capsys.readouterr().out
    assert f"asked in {HR_PUBLIC}" in text and "Falcon" not in text


@pytest.mark.parametrize(
    ("include", "expected"),
    [
        ("channels", {PUBLIC_QUESTION: GENERAL, HR_QUESTION: HR_PUBLIC, FALCON_QUESTION: FALCON}),
        ("all", {PUBLIC_QUESTION: GENERAL, HR_QUESTION: HR_PUBLIC, FALCON_QUESTION: FALCON, DM_QUESTION: None}),
    ],
)
def test_an_admin_can_include_private_channels_and_dms_explicitly(
    asked: Bot,
    no_settings: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    include: str,
    expected: dict[str, str | None],
) -> None:
    no_settings.setenv("QWENBOT_GAPS_INCLUDE", include)
    report = _gaps(asked, no_settings, tmp_path, capsys)
    assert {g["example"]: g["channel"] for g in report["groups"]} == expected  # a DM's id is never shown
    assert "D0ANNA" not in json.dumps(report)


def test_the_digest_posts_no_private_question_and_searches_each_channels_scope(asked: Bot) -> None:
    rt = asked.runtime
    searched: list[tuple[str, Any]] = []

    def search(query: str, k: int, scope: Any) -> Any:
        searched.append((query, scope))
        return rt.searcher.search(query, k=k, filter=scope)

    digest = GapDigest(
        asked.settings.gaps_config(), rt.state, rt.client, rt.searcher.embedder.encode, search, rt.policy.scopes
    )
    now = time.time()
    digest.post(now - 3600, now + 60)
    [post] = [c.args for c in asked.slack.calls_to("chat.postMessage") if c.args["channel"] == ADMINS]
    posted = json.dumps(post, ensure_ascii=False)
    assert PUBLIC_QUESTION in posted and HR_QUESTION in posted
    assert "Falcon" not in posted and "Initech" not in posted
    assert f"_asked in_ <#{HR_PUBLIC}>" in posted and f"_asked in_ <#{GENERAL}>" in posted
    assert dict(searched)[HR_QUESTION] == rt.policy.scopes.for_channel(HR_PUBLIC)
    assert "vpn-guide" not in posted

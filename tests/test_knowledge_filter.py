"""The auto-mode question filter and the thread-summon rule, on their own: the labelled channel messages
(tests/fixtures/channel_messages.jsonl, measured by bench/bench_question_filter.py) hold their figures,
and the cases each rule exists for are decided as the rule says."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bot.answer.records import Turn
from bot.knowledge.filter import is_summon, open_question, reads_as_question

ROOT = Path(__file__).resolve().parent.parent


def test_the_labelled_channel_messages_keep_their_precision_and_recall() -> None:
    run = [sys.executable, "-m", "bench.bench_question_filter"]
    done = subprocess.run(run, cwd=ROOT, capture_output=True, text=True, timeout=120, check=True)
    first = done.stdout.splitlines()[0]
    precision = float(first.split("precision ")[1].split(",")[0])
    recall = float(first.split("recall ")[1])
    assert first.startswith("98 messages") and precision >= 0.9 and recall >= 0.9, first


def test_what_is_and_is_not_a_question_for_help() -> None:
    assert reads_as_question("Does anyone know how to request parental leave?")
    assert reads_as_question("where do I find the VPN config for the Berlin office")
    assert not reads_as_question("<@U0BOB> can you send me the slides?")  # meant for Bob
    assert not reads_as_question("<!subteam^S0HREXPERT> please review this?")
    assert not reads_as_question("Reminder: is the survey open? Fill it in by Friday.")
    assert not reads_as_question("thanks!")
    assert not reads_as_question("ok?")  # too short to be one
    # a contraction is no question word (read as "can ..." it was one before)
    assert not reads_as_question("Can't wait for the offsite!")


def test_a_summon_asks_nothing_of_its_own_and_the_threads_open_question_is_its_newest() -> None:
    for text in ("", "can you help?", "any ideas", "please take a look at this thread"):
        assert is_summon(text), text
    for text in ("how do I request vacation?", "what about contractors", "help me with the VPN config"):
        assert not is_summon(text), text
    turns = [
        Turn("user", "How many vacation days do I get?"),
        Turn("user", "Not sure, it changed this year."),
        Turn("user", "And can they carry over into next year?"),
        Turn("user", "good point"),
    ]
    assert open_question(turns) == ("And can they carry over into next year?", turns[:2])
    assert open_question([Turn("user", "The VPN is down for me"), Turn("assistant", "…")]) == (
        "The VPN is down for me",
        [],
    )
    assert open_question([Turn("assistant", "an answer")]) is None

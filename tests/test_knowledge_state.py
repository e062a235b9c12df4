"""Escalations, learned answers and private answers in the state store, on SQLite and a real PostgreSQL:
once per thread however many replicas click, every replica mirrors the same learned answers, expiry
archives, `qwenbot learned list | show | remove` reads and removes them."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bot import cli
from bot.knowledge.learned import LearnedAnswers, LearnedConfig
from bot.state import State
from bot.state.knowledge import NewLearned
from retrieval.formats.front_matter import split_front_matter
from retrieval.loaders import load_document


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    return tmp_path / "state.sqlite3" if request.param == "sqlite" else request.getfixturevalue("postgres_url")


@pytest.fixture
def replicas(location: Path | str) -> Iterator[tuple[State, State]]:
    """Two replicas' views of one state database."""
    first, second = State(location), State(location)
    yield first, second
    first.close()
    second.close()


def _learned(scope: str = "s-hr", question: str = "Which badge do contractors get?") -> NewLearned:
    return NewLearned(
        question=question,
        answer="A green one, at reception.",
        author="U0DANA",
        author_name="Dana",
        saved_by="U0DANA",
        channel="C0HRHELP",
        thread_ts="1700000000.000100",
        permalink="https://example.slack.com/archives/C0HRHELP/p1700000000000100",
        scope=scope,
        expires=time.time() + 86400,
    )


def test_a_thread_is_escalated_once_and_its_save_offer_posted_once_across_replicas(
    replicas: tuple[State, State],
) -> None:
    a, b = replicas
    qid = a.questions.add_question(
        event_id=None, channel="C0HRHELP", thread_ts="1.000001", message_ts="1.000001", user="U0ALICE", text="q?"
    )
    with ThreadPoolExecutor(8) as pool:
        won = list(
            pool.map(
                lambda i: (a, b)[i % 2].knowledge.escalate("C0HRHELP", "1.000001", qid, "U0ALICE", "S0X"), range(8)
            )
        )
    assert won.count(True) == 1
    assert b.knowledge.question_user(qid) == "U0ALICE" and b.knowledge.question_text(qid) == "q?"
    assert [a.knowledge.claim_offer("C0HRHELP", "1.000001"), b.knowledge.claim_offer("C0HRHELP", "1.000001")] == [
        True,
        False,
    ]
    b.knowledge.set_offer("C0HRHELP", "1.000001", "1.000009")
    escalation = a.knowledge.escalation("C0HRHELP", "1.000001")
    assert escalation is not None and (escalation.asker, escalation.offered_ts) == ("U0ALICE", "1.000009")


def test_every_replica_mirrors_the_learned_answers_and_expiry_archives_them(
    replicas: tuple[State, State], tmp_path: Path
) -> None:
    a, b = replicas
    indexed: list[Path] = []
    first = LearnedAnswers(LearnedConfig(tmp_path / "a", 30), a.knowledge, indexed.append, lambda: {"s-hr"})
    second = LearnedAnswers(LearnedConfig(tmp_path / "b", 30), b.knowledge, indexed.append, lambda: {"s-hr"})
    saved = first.save(_learned())
    first.save(_learned(scope="s-gone", question="From a scope the file no longer has"))
    assert second.refresh() and not second.refresh()  # the other replica catches up once
    files = sorted(p.relative_to(tmp_path / "b").as_posix() for p in (tmp_path / "b").rglob("*.md"))
    assert files == [f"s-hr/{saved.id}-which-badge-do-contractors-get.md"]  # the gone scope is never mirrored
    text = (tmp_path / "b" / files[0]).read_text()
    assert "title: Which badge do contractors get? (answered by Dana)" in text
    assert "url: https://example.slack.com/archives/C0HRHELP/p1700000000000100" in text and "status" not in text
    assert saved.id in b.knowledge.expire(now=time.time() + 2 * 86400)
    assert second.refresh() and "status: archived" in (tmp_path / "b" / files[0]).read_text()
    assert indexed == [tmp_path / "a", tmp_path / "b", tmp_path / "b"]


def test_a_private_answer_is_shared_once(replicas: tuple[State, State]) -> None:
    a, b = replicas
    pid = a.knowledge.add_private("C0GENERAL", "U0ALICE", "q?", "{}")
    assert [b.knowledge.claim_share(pid), a.knowledge.claim_share(pid)] == [True, False]
    b.knowledge.set_shared(pid, "5.000001")
    found = a.knowledge.private(pid)
    assert found is not None and (found.user, found.shared_ts) == ("U0ALICE", "5.000001")


def test_qwenbot_learned_lists_shows_and_removes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "state.sqlite3"
    state = State(db)
    learned_id = state.knowledge.add_learned(_learned(question="Which badge? \x1b[31mred\x1b[0m"))
    state.close()
    monkeypatch.setenv("QWENBOT_STATE_DB", str(db))

    def run(*args: str) -> tuple[int, str, str]:
        code = cli.main(["--env-file", os.devnull, "learned", *args])
        out = capsys.readouterr()
        return code, out.out, out.err

    code, out, _ = run("list")
    assert code == 0 and f"{learned_id}  active" in out and "1 learned answer" in out
    assert "\x1b" not in out  # people's text is quoted, never a terminal control sequence
    code, out, _ = run("show", str(learned_id))
    assert code == 0 and "A green one" in out and f"learned/s-hr/{learned_id}-" in out
    code, out, _ = run("remove", str(learned_id))
    assert code == 0 and "removed" in out
    assert run("list")[1].endswith("0 learned answers\n")
    assert f"{learned_id}  removed" in run("list", "--all")[1]
    code, _, err = run("show", "99")
    assert code != 0 and "no learned answer 99" in err


def test_qwenbot_learned_export_writes_markdown_with_front_matter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "state.sqlite3"
    state = State(db)
    kept = state.knowledge.add_learned(_learned(question="Which badge?"))
    gone = state.knowledge.add_learned(_learned(question="Which locker?"))
    state.knowledge.set_status(gone, "removed")
    state.close()
    monkeypatch.setenv("QWENBOT_STATE_DB", str(db))
    out_dir = tmp_path / "export"

    assert cli.main(["--env-file", os.devnull, "learned", "export", str(out_dir)]) == 0
    assert "exported 1 learned answer" in capsys.readouterr().out
    files = sorted(p.relative_to(out_dir).as_posix() for p in out_dir.rglob("*.md"))
    assert len(files) == 1 and files[0].startswith(f"s-hr/{kept}-")  # the removed one is not exported
    meta, body = split_front_matter((out_dir / files[0]).read_text(encoding="utf-8"))
    assert meta["title"].startswith("Which badge?") and meta["owner"] and "A green one" in body
    assert load_document(out_dir / files[0], files[0]).title.startswith("Which badge?")  # the indexer reads it

"""Retrieval metrics on hand-computed examples, the questions file's errors, and `qwenbot eval`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot import cli
from retrieval.evaluation import (
    QuestionsError,
    load_questions,
    ndcg_at_k,
    percentile,
    ranked_documents,
    recall_at_k,
    reciprocal_rank,
)
from retrieval.models import Hit


def hit(path: str, n: int) -> Hit:
    return Hit(chunk_id=f"{path}-{n}", text="", score=1.0 / (n + 1), title="", heading_path="", path=path)


def test_metrics_on_a_hand_computed_example() -> None:
    # Chunks ranked d3, d1, d3, d5, d2, d1, d9: as documents d3, d1, d5, d2, d9 (best chunk counts).
    hits = [hit(p, i) for i, p in enumerate(["d3", "d1", "d3", "d5", "d2", "d1", "d9"])]
    ranked = ranked_documents(hits)
    assert ranked == ["d3", "d1", "d5", "d2", "d9"]
    relevant = {"d1", "d2", "d7"}
    # d1 at rank 2, d2 at rank 4, d7 never.
    assert recall_at_k(ranked, relevant, 5) == pytest.approx(2 / 3)
    assert recall_at_k(ranked, relevant, 2) == pytest.approx(1 / 3)
    assert reciprocal_rank(ranked, relevant, 10) == pytest.approx(0.5)
    assert reciprocal_rank(ranked, relevant, 1) == 0.0
    # DCG = 1/log2(3) + 1/log2(5) = 0.63093 + 0.43068; ideal = 1 + 0.63093 + 0.5 (three relevant).
    assert ndcg_at_k(ranked, relevant, 10) == pytest.approx(1.06161 / 2.13093, abs=1e-4)
    assert ndcg_at_k(["d1"], {"d1"}, 10) == 1.0
    assert ndcg_at_k(["x", "d1"], {"d1"}, 1) == 0.0


def test_percentile_interpolates() -> None:
    assert percentile([10.0, 20.0, 30.0, 40.0], 50) == pytest.approx(25.0)
    assert percentile([10.0, 20.0, 30.0, 40.0], 95) == pytest.approx(38.5)
    assert percentile([7.0], 95) == 7.0 and percentile([], 50) == 0.0


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "not valid JSON"),
        ('["a list"]', "expected a JSON object"),
        ('{"id": "2", "sources": []}', "'question' must be non-empty text"),
        ('{"id": "2", "question": "Why?"}', "'sources' must be a list"),
        ('{"id": "2", "question": "Why?", "sources": "a.md"}', "'sources' must be a list"),
        ('{"id": "1", "question": "Again?", "sources": []}', "duplicate id '1'"),
    ],
)
def test_bad_question_lines_name_the_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text('{"id": "1", "question": "Fine?", "sources": ["a.md"]}\n\n' + line + "\n", encoding="utf-8")
    with pytest.raises(QuestionsError, match=f"q.jsonl:3: .*{message}"):
        load_questions(path)


def test_eval_command_prints_one_json_object(
    tmp_path: Path, write_doc, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], embedder
) -> None:
    docs = tmp_path / "docs"
    write_doc(docs, "hr/vacation.md", "Vacation", {"Allowance": "Employees get 25 vacation days a year."})
    write_doc(docs, "it/vpn.md", "VPN", {"Setup": "Install the WireGuard client and import the office profile."})
    write_doc(docs, "eng/deploys.md", "Deploys", {"Rollback": "Use shipit rollback to undo a bad deploy."})
    questions = tmp_path / "questions.jsonl"
    questions.write_text(
        "\n".join(
            json.dumps(q)
            for q in [
                {"id": "1", "question": "how many vacation days do we get", "sources": ["hr/vacation.md"]},
                {"id": "2", "question": "how do I set up the VPN", "sources": ["it/vpn.md"]},
                {"id": "3", "question": "undo a bad deploy", "sources": ["eng/deploys.md"], "answer": "rollback"},
                {"id": "4", "question": "what is the wifi password", "sources": []},
            ]
        ),
        encoding="utf-8",
    )
    bot_index = tmp_path / "bot-index"
    monkeypatch.setenv("QWENBOT_INDEX_DIR", str(bot_index))
    argv = ["--env-file", str(tmp_path / "none.env"), "eval", str(questions), "--docs", str(docs), "--json"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    report = json.loads(out)  # exactly one JSON object on stdout
    assert out.strip().count("\n") == 0
    assert report["questions"] == 4 and report["unanswerable"] == 1 and report["answerable"] == 3
    assert report["recall@5"] == 1.0 and report["mrr@10"] == 1.0 and report["ndcg@10"] == 1.0
    assert set(report["latency_ms"]) == {"p50", "p95"} and report["latency_ms"]["p50"] > 0
    assert not bot_index.exists()  # the eval never touches the bot's index

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "1", "question": "ok?", "sources": []}\n{"id": "2"}\n', encoding="utf-8")
    assert cli.main(["--env-file", str(tmp_path / "none.env"), "eval", str(bad), "--docs", str(docs)]) == 2
    assert "bad.jsonl:2: 'question' must be non-empty text" in capsys.readouterr().err

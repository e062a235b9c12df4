"""Build a near-domain test set: a copy of a corpus with the source documents of every k-th question
removed. Those questions become unanswerable (`"sources": []`) while their topic stays in the corpus,
which is where a "not in the docs" decision is hardest. The other questions keep the sources that remain.

    python bench/make_near_domain.py QUESTIONS.jsonl --docs DIR --out OUT_DIR [--every 4] [--offset 0]

OUT_DIR gets `docs/` (the reduced copy; files are hard-linked where possible) and `questions.jsonl`.
Deterministic: the same arguments always give the same set.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path


def near_domain(questions: list[dict], every: int, offset: int) -> tuple[list[dict], set[str]]:
    """(the questions rewritten, the document paths to drop)."""
    answerable = [q for q in questions if q.get("sources")]
    dropped: set[str] = set()
    for i, q in enumerate(answerable):
        if i % every == offset % every:
            dropped.update(q["sources"])
    out = []
    for q in questions:
        left = [s for s in q.get("sources") or [] if s not in dropped]
        was_answerable = bool(q.get("sources"))
        line = {**q, "sources": left}
        if was_answerable and not left:
            line["near_domain"] = True  # its answer was removed; the topic stays
            line.pop("answer", None)
        out.append(line)
    return out, dropped


def copy_docs(src: Path, dst: Path, dropped: set[str]) -> int:
    copied = 0
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        rel = path.relative_to(src).as_posix()
        if rel in dropped or rel == "questions.jsonl":
            continue
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, target)
        except OSError:
            shutil.copy2(path, target)
        copied += 1
    return copied


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("questions", type=Path)
    parser.add_argument("--docs", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--every", type=int, default=4, help="drop the sources of every k-th answerable question")
    parser.add_argument("--offset", type=int, default=0)
    args = parser.parse_args()
    questions = [json.loads(line) for line in args.questions.read_text(encoding="utf-8").splitlines() if line.strip()]
    rewritten, dropped = near_domain(questions, args.every, args.offset)
    if args.out.exists():
        shutil.rmtree(args.out)
    copied = copy_docs(args.docs, args.out / "docs", dropped)
    with (args.out / "questions.jsonl").open("w", encoding="utf-8") as f:
        for q in rewritten:
            f.write(json.dumps(q, ensure_ascii=False) + "\n")
    near = sum(1 for q in rewritten if q.get("near_domain"))
    still = sum(1 for q in rewritten if q["sources"])
    print(
        f"{args.out}: {copied} documents ({len(dropped)} dropped); {still} answerable questions, "
        f"{near} near-domain unanswerable, {len(rewritten) - still - near} unanswerable from the start"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Safety: front matter is parsed with bounded size and no alias expansion; its fields become
bounded one-line strings (defect 3: a 489-byte alias bomb bound to `updated:` crashed
`qwenbot index` with MemoryError; a smaller one printed a 312-million-character error line)."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from retrieval.config import IndexConfig
from retrieval.embeddings import Embedder
from retrieval.errors import LoadError
from retrieval.indexer import Indexer
from retrieval.loaders import load_document


def _bomb(levels: int) -> str:
    """Nested YAML aliases: each level repeats the one before nine times (9**levels leaves)."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]")
    lines.append(f"updated: *a{levels - 1}")
    return "---\n" + "\n".join(lines) + "\n---\n\n# Title\n\nBody text.\n"


def test_safety_front_matter_alias_bomb_is_one_short_error(tmp_path: Path) -> None:
    path = tmp_path / "bomb.md"
    path.write_text(_bomb(6))  # 9**6 leaves: a few MB once expanded (the real one had 9**9)
    assert len(path.read_bytes()) < 500
    tracemalloc.start()
    try:
        with pytest.raises(LoadError) as caught:
            load_document(path, "bomb.md")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = str(caught.value)
    assert len(message) < 200 and "alias" in message, message[:300]
    assert peak < 2_000_000, peak


def test_safety_front_matter_over_64_kb_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big.md"
    path.write_text("---\ntitle: Big\nnotes: |\n" + "  filler line of front matter\n" * 3000 + "---\n\nBody.\n")
    with pytest.raises(LoadError, match="front matter is larger than 64 KB"):
        load_document(path, "big.md")


def test_safety_front_matter_fields_are_bounded_one_line_strings(tmp_path: Path) -> None:
    path = tmp_path / "long.md"
    tags = ", ".join(f"tag{i}" for i in range(500))
    path.write_text(
        f'---\ntitle: "{"T" * 10_000}"\nowner: "line one\\nline two"\ntags: [{tags}, "{"x" * 5000}"]\n'
        f"url: https://wiki.example/{'p' * 5000}\n---\n\nBody.\n"
    )
    doc = load_document(path, "long.md")
    assert len(doc.title) <= 300 and doc.owner == "line one line two"
    assert len(doc.tags) <= 50 and all(len(t) <= 100 for t in doc.tags)
    assert doc.url is None  # too long to be a real address: dropped, not cut into a wrong one


def test_safety_a_bad_front_matter_file_does_not_stop_the_run(tmp_path: Path, embedder: Embedder) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "bomb.md").write_text(_bomb(7))
    (docs / "good.md").write_text("---\ntitle: Good\n---\n\n# Good\n\nA normal document about VPN access.\n")
    stats = Indexer(IndexConfig(index_dir=tmp_path / "index"), embedder).run([docs], progress=False)
    assert (stats.added, stats.failed) == (1, 1)
    [error] = stats.errors
    assert error.startswith(f"{docs / 'bomb.md'}: ") and len(error) < 300 + len(str(docs)), error[:300]

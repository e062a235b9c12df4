"""Structure-aware chunking, measured with the real model's tokenizer."""

from __future__ import annotations

import copy
import hashlib
import random
import re
from pathlib import Path

import pytest

from retrieval.chunking import chunk_document
from retrieval.embeddings import Embedder
from retrieval.loaders import load_document
from retrieval.models import Block, Chunk, Document

MODEL_LIMIT = 256  # all-MiniLM-L6-v2 reads at most 256 word pieces, [CLS] and [SEP] included

WORDS = (
    "vacation leave policy approval manager request payroll holiday carry over balance employee "
    "contract region office remote stipend equipment laptop security badge access review deadline "
    "quarter budget travel receipt reimbursement incident pager escalation runbook database failover"
).split()


def sentence(rng: random.Random, n_words: int) -> str:
    words = [rng.choice(WORDS) for _ in range(n_words)]
    return " ".join(words).capitalize() + "."


def paragraph(rng: random.Random, sentences: int) -> str:
    return " ".join(sentence(rng, rng.randint(6, 18)) for _ in range(sentences))


def fits(chunk: Chunk, embedder: Embedder, max_tokens: int) -> bool:
    tokens = embedder.count_tokens(chunk.embed_text)
    return tokens <= max_tokens and tokens + 2 <= MODEL_LIMIT


def test_heading_path_goes_into_chunks_and_embedded_text(embedder: Embedder) -> None:
    doc = Document(
        path="hr/guide.md",
        title="Employee Guide",
        blocks=[
            Block("Welcome.", ()),
            Block("You get 25 days of vacation per year.", ("Handbook", "Leave", "Vacation")),
        ],
    )
    intro, vacation = chunk_document(doc, embedder)
    assert (intro.heading_path, intro.embed_text) == ("", "Employee Guide\nWelcome.")
    assert vacation.heading_path == "Handbook > Leave > Vacation"
    assert vacation.title == "Employee Guide"
    assert vacation.text == "You get 25 days of vacation per year."
    assert vacation.embed_text == "Employee Guide > Handbook > Leave > Vacation\nYou get 25 days of vacation per year."


def test_a_heading_that_restates_the_title_is_said_once(tmp_path: Path, embedder: Embedder) -> None:
    path = tmp_path / "handbook.md"
    path.write_text("# Handbook\n\n## Leave\n\n### Vacation\n\nYou get 25 days.\n", encoding="utf-8")
    (chunk,) = chunk_document(load_document(path, "handbook.md"), embedder)
    assert chunk.title == "Handbook"
    assert chunk.heading_path == "Leave > Vacation"
    assert chunk.embed_text == "Handbook > Leave > Vacation\nYou get 25 days."
    superseded = Document(
        path="travel-2022.md",
        title="Travel Policy (2022) — SUPERSEDED",
        blocks=[Block("Claims within 30 days.", ("Travel Policy (2022)", "Claims"))],
    )
    assert chunk_document(superseded, embedder)[0].heading_path == "Claims"


def test_short_blocks_of_one_section_are_packed_sections_and_pages_are_not(embedder: Embedder) -> None:
    doc = Document(
        path="a.pdf",
        title="Doc",
        blocks=[
            Block("One.", ("A",), page=1),
            Block("Two.", ("A",), page=1),
            Block("Three.", ("B",), page=1),
            Block("Four.", ("B",), page=2),
        ],
    )
    chunks = chunk_document(doc, embedder)
    assert [(c.text, c.heading_path, c.page) for c in chunks] == [
        ("One.\n\nTwo.", "A", 1),
        ("Three.", "B", 1),
        ("Four.", "B", 2),
    ]


def long_document(rng: random.Random) -> Document:
    blocks = [Block(paragraph(rng, rng.randint(1, 8)), ("Leave", "Vacation")) for _ in range(40)]
    run_on = " ".join(rng.choice(WORDS) for _ in range(700))  # one "sentence" far over any limit
    blocks.append(Block(run_on, ("Leave", "Run-on")))
    blocks.append(Block("token " + hashlib.sha256(b"x").hexdigest() * 60, ("Leave", "Blob")))  # one huge word
    # A long word of rare letter pairs: many word pieces, so small chunks must cut inside it.
    odd_word = "".join(rng.choice("qxzjkvwy") for _ in range(99))
    blocks.append(Block(f"The code is {odd_word} today.", ("Leave", "Code word")))
    code = "\n".join(f"    step_{i} = run(step_{i - 1}, retries=3)  # {rng.choice(WORDS)}" for i in range(1, 150))
    blocks.append(Block("```python\n" + code + "\n```", ("Engineering", "Code")))
    long_heading = " ".join(rng.choice(WORDS) for _ in range(300))
    blocks.append(Block(paragraph(rng, 3), ("Engineering", long_heading)))
    return Document(path="handbook.md", title="Employee Handbook", blocks=blocks)


@pytest.mark.parametrize(("max_tokens", "overlap"), [(200, 40), (64, 16), (1000, 40), (32, 8)])
def test_no_chunk_exceeds_the_token_limit(embedder: Embedder, max_tokens: int, overlap: int) -> None:
    doc = long_document(random.Random(7))
    chunks = chunk_document(doc, embedder, max_tokens=max_tokens, overlap_tokens=overlap)
    assert len(chunks) > 10
    over = [c.ordinal for c in chunks if not fits(c, embedder, min(max_tokens, MODEL_LIMIT - 2))]
    assert over == []
    # Nothing is dropped: every word of the document is in some chunk.
    doc_words = {w for b in doc.blocks for w in re.findall(r"\w+", b.text.lower()) if len(w) < 40}
    chunk_words = {w for c in chunks for w in re.findall(r"\w+", c.text.lower())}
    assert doc_words <= chunk_words
    # Chunks are not needlessly small: most of them use most of the budget.
    full = [c for c in chunks if embedder.count_tokens(c.embed_text) >= 0.6 * min(max_tokens, 254)]
    assert len(full) >= len(chunks) // 2


def test_counts_are_checked_when_a_tokenizer_may_not_add_up(embedder: Embedder) -> None:
    # Byte-level BPE models (e.g. Qwen embeddings) can merge tokens across the joins; the chunker then
    # re-counts every joined chunk. The same model with that path forced must give the same chunks.
    cautious = copy.copy(embedder)
    cautious.counts_add_up = False
    doc = long_document(random.Random(5))
    for max_tokens in (200, 32):
        chunks = chunk_document(doc, cautious, max_tokens=max_tokens, overlap_tokens=8)
        assert all(fits(c, embedder, max_tokens) for c in chunks)
    assert chunk_document(doc, cautious) == chunk_document(doc, embedder)


def test_long_text_is_cut_at_word_boundaries(embedder: Embedder) -> None:
    rng = random.Random(3)
    words = [rng.choice(WORDS) for _ in range(900)]
    doc = Document(path="r.txt", title="R", blocks=[Block(" ".join(words))])
    chunks = chunk_document(doc, embedder, max_tokens=100, overlap_tokens=0)
    assert len(chunks) >= 9
    assert all(w in WORDS for c in chunks for w in c.text.split())  # no word was cut in two
    assert " ".join(c.text for c in chunks) == " ".join(words)  # and with no overlap, nothing repeats


def shared_edge(previous: str, following: str) -> str:
    """The longest tail of `previous` that `following` starts with."""
    for start in range(len(previous)):
        if following.startswith(previous[start:]):
            return previous[start:]
    return ""


def test_consecutive_chunks_of_a_section_overlap(embedder: Embedder) -> None:
    body = " ".join(f"Rule {i} says form {i} goes to the {WORDS[i % len(WORDS)]} desk." for i in range(80))
    doc = Document(
        path="rules.md",
        title="Rules",
        blocks=[Block(body, ("Forms",)), Block("Other section text.", ("Contacts",))],
    )
    chunks = chunk_document(doc, embedder, max_tokens=100, overlap_tokens=30)
    forms = [c for c in chunks if c.heading_path == "Forms"]
    assert len(forms) >= 4
    for previous, following in zip(forms, forms[1:], strict=False):
        edge = shared_edge(previous.text, following.text)
        assert edge.startswith("Rule "), (previous.text, following.text)  # whole sentences
        assert 0 < embedder.count_tokens(edge) <= 30
    contacts = next(c for c in chunks if c.heading_path == "Contacts")
    assert contacts.text == "Other section text."  # no overlap across sections


def test_no_overlap_when_it_is_off(embedder: Embedder) -> None:
    body = " ".join(f"Rule {i} says form {i} goes to desk {i}." for i in range(80))
    doc = Document(path="rules.md", title="Rules", blocks=[Block(body)])
    chunks = chunk_document(doc, embedder, max_tokens=100, overlap_tokens=0)
    sentences = [s for c in chunks for s in re.findall(r"Rule \d+ says", c.text)]
    assert len(sentences) == 80 == len(set(sentences))


def test_ids_are_stable_and_metadata_is_copied(tmp_path: Path, embedder: Embedder) -> None:
    rng = random.Random(11)
    doc = Document(
        path="hr/vacation.md",
        title="Vacation",
        blocks=[Block(paragraph(rng, 6), ("Booking",)) for _ in range(8)],
        url="https://wiki.example.com/vacation",
        owner="people-team",
        updated="2026-02-03",
        tags=("hr", "leave"),
    )
    first = chunk_document(doc, embedder)
    again = chunk_document(doc, embedder)
    assert [c.id for c in first] == [c.id for c in again]
    assert first == again
    prefix = hashlib.sha1(b"hr/vacation.md").hexdigest()[:12]
    assert [c.id for c in first] == [f"{prefix}-{i:04d}" for i in range(len(first))]
    assert [c.ordinal for c in first] == list(range(len(first)))
    for c in first:
        assert (c.path, c.url, c.owner, c.updated, c.tags) == (
            "hr/vacation.md",
            "https://wiki.example.com/vacation",
            "people-team",
            "2026-02-03",
            ("hr", "leave"),
        )
    moved = chunk_document(Document(path="hr/pto.md", title=doc.title, blocks=doc.blocks), embedder)
    assert {c.id[:12] for c in moved} == {hashlib.sha1(b"hr/pto.md").hexdigest()[:12]}

"""Questions in Chinese, Japanese and German over docs_corpus's intl/ section, with the default setup:
the real index of docs_corpus, the default embedding model, hybrid search as the bot runs it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.settings import load_settings
from retrieval.embeddings import Embedder
from retrieval.search import Searcher
from retrieval.store import iter_collection, open_collection

pytestmark = pytest.mark.slow  # indexes docs_corpus (once per session, shared)


@pytest.fixture(scope="module")
def searcher(corpus_index: Path, embedder: Embedder) -> Iterator[Searcher]:
    config = load_settings("/nonexistent/.env").index_config(corpus_index)
    with Searcher(config, embedder) as s:
        yield s


@pytest.mark.parametrize(
    ("question", "document"),
    [
        ("在中国出差时应该用哪个 VPN 出口节点？", "intl/zh/vpn-guide.md"),
        ("没休完的法定年假可以留到明年吗？", "intl/zh/annual-leave.md"),
        ("报销的发票抬头应该写什么？", "intl/zh/invoice-reimbursement.md"),
        ("年末調整の入力の締め切りはいつですか", "intl/ja/year-end-adjustment.md"),
        ("地震のときの避難場所はどこですか", "intl/ja/tokyo-office.md"),
        ("Ab welchem Tag brauche ich eine Krankschreibung?", "intl/de/krankmeldung.md"),
        ("Wie viele Urlaubstage bekomme ich im Jahr?", "intl/de/urlaub.md"),
    ],
)
def test_a_question_in_the_documents_language_finds_the_document_first(
    searcher: Searcher, question: str, document: str
) -> None:
    hits = searcher.search(question, k=5)
    assert hits and hits[0].path == document, [h.path for h in hits]
    assert hits[0].lexical_score, "keyword search found it too"


def test_a_mixed_question_matches_the_chinese_page_by_its_chinese_words(searcher: Searcher) -> None:
    """English words around a Chinese term: the term is tokenized as the Chinese chunks were."""
    hits = searcher.search("which day is the 调休 workday for Spring Festival 春节?", k=5)
    assert hits[0].path == "intl/zh/annual-leave.md", [h.path for h in hits]


def test_each_chunk_records_its_language(corpus_index: Path) -> None:
    config = load_settings("/nonexistent/.env").index_config(corpus_index)
    seen: dict[str, set[str]] = {}
    for page in iter_collection(open_collection(config), ["metadatas"]):
        for meta in page["metadatas"]:
            top = meta["path"].split("/")[1] if meta["path"].startswith("intl/") else "en"
            seen.setdefault(top, set()).add(meta["lang"])
    assert seen == {"en": {"en"}, "zh": {"zh"}, "ja": {"ja"}, "de": {"de"}, "es": {"es"}}

"""Keyword-search tokens in any language (retrieval/tokenize.py), and an index saved by the
English-only tokenizer being rebuilt rather than searched with tokens that no longer match."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
import Stemmer
from bm25s.stopwords import STOPWORDS_EN_PLUS

from retrieval import lexical
from retrieval.config import IndexConfig
from retrieval.embeddings import Embedder
from retrieval.indexer import Indexer
from retrieval.lexical import LexicalIndex, saved_stamp
from retrieval.search import Searcher
from retrieval.store import open_collection
from retrieval.tokenize import detect_language, tokenize

OLD_ANALYZER = "w1-enplus-snowball-k1.2-b0.75"  # lexical.ANALYZER before languages were told apart


def english_only(text: str, lang: str | None = None) -> list[str]:
    """The tokenizer before languages were told apart, for every text whatever its language."""
    words = [w for w in re.findall(r"\w+", text.lower()) if w not in frozenset(STOPWORDS_EN_PLUS)]
    stems: list[str] = Stemmer.Stemmer("english").stemWords(words)
    return stems


# --- Chinese, Japanese, Korean ----------------------------------------------------------------------


def test_cjk_runs_become_character_bigrams_in_any_language() -> None:
    assert tokenize("年假申请", "zh") == ["年假", "假申", "申请"]
    assert tokenize("年假申请", "en") == tokenize("年假申请", "ja") == tokenize("年假申请", "zh")
    assert tokenize("有給休暇は", "ja") == ["有給", "給休", "休暇", "暇は"]
    assert tokenize("연차휴가 신청", "ko") == ["연차", "차휴", "휴가", "신청"]
    assert tokenize("假", "zh") == ["假"]  # a lone character is a word of its own


def test_latin_words_between_cjk_runs_are_words_and_full_width_forms_are_plain() -> None:
    assert tokenize("VPN怎么连？", "zh") == ["vpn", "怎么", "么连"]
    assert tokenize("ＶＰＮ の設定", "ja") == ["vpn", "の設", "設定"]
    # the same words as an English page's: "deploys" stems as it does there
    assert tokenize("如何 deploys 服务", "zh") == ["如何", "deploy", "服务"]


def test_before_the_change_a_chinese_sentence_was_one_word() -> None:
    """Why this module exists: one token per sentence matched no other sentence."""
    assert english_only("如何申请年假？") == ["如何申请年假"]
    assert "年假" in tokenize("如何申请年假？", "zh")


# --- stemming in the text's language ---------------------------------------------------------------


def test_german_is_stemmed_in_german_compounds_and_their_inflections_alike() -> None:
    assert tokenize("Urlaubstage", "de") == tokenize("Urlaubstagen", "de") == ["urlaubstag"]
    # a compound stays one word; its plural (with umlaut) stems to the same word as the singular
    assert tokenize("Urlaubsanträge", "de") == tokenize("Urlaubsantrag", "de") == ["urlaubsantrag"]
    # German function words go; English stemming would have kept them and cut words differently
    assert tokenize("Wie viele Urlaubstage habe ich?", "de") == ["viel", "urlaubstag"]
    assert english_only("Wie viele Urlaubstage habe ich?") != ["viel", "urlaubstag"]


def test_spanish_is_stemmed_in_spanish() -> None:
    assert tokenize("¿Cuántos días de vacaciones tengo?", "es") == ["cuant", "dias", "vacacion"]
    assert tokenize("vacación", "es") == tokenize("Vacaciones", "es") == ["vacacion"]


def test_english_is_tokenized_as_before() -> None:
    """English (and any text without CJK characters in a language with no stemmer) is unchanged."""
    for text in (
        "How many vacation days do we get per year? Step 3, plan B, vitamin D.",
        "Deploys were rolled back; the runbook's rollback steps (v2.1) apply to kafka-consumer-lag.",
        "Interleukin-6 levels in CD4+ T cells were 2.5-fold higher (p < 0.05).",
    ):
        assert tokenize(text, "en") == english_only(text)
        assert tokenize(text, "la") == english_only(text)  # Latin: no stemmer, the default analyzer


# --- language detection ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("question", "language"),
    [
        ("如何申请年假？", "zh"),
        ("VPN 怎么连", "zh"),
        ("有給休暇は何日ありますか", "ja"),
        ("VPN の設定方法", "ja"),
        ("연차 휴가는 며칠인가요?", "ko"),
        ("Wie viele Urlaubstage habe ich?", "de"),
        ("¿Cuántos días de vacaciones tengo?", "es"),
        ("how many vacation days do we get per year?", "en"),
    ],
)
def test_short_questions_are_told_apart(question: str, language: str) -> None:
    assert detect_language(question) == language


def test_an_unsure_guess_is_english_unless_the_index_says_which_languages_there_are() -> None:
    assert detect_language("per diem") == "en"  # Afrikaans at 12%: too unsure to stem as anything else
    assert detect_language("Urlaub beantragen") == "en"
    assert detect_language("Urlaub beantragen", among=["en", "de"]) == "de"
    assert detect_language("") == "en"


def test_a_question_is_tokenized_in_a_language_of_the_index() -> None:
    english = LexicalIndex.build(None, ["a"], ["Vacation requests"], ["a.md"], [()], ["en"])
    both = LexicalIndex.build(None, ["a", "b"], ["Vacation", "Urlaub"], ["a.md", "b.md"], [(), ()], ["en", "de"])
    question = "Wie beantrage ich Urlaubstage?"
    assert english.query_tokens(question) == english_only(question)  # an English index: English, as before
    assert both.query_tokens(question) == ["beantrag", "urlaubstag"]


def test_chunks_indexed_before_languages_were_recorded_are_told_apart_when_bm25_is_built() -> None:
    """A collection written by an older qwenbot has no `lang` per chunk: the BM25 build detects it."""
    texts = ["法定年假当年未休完的，可以延续到次年使用。", "Nicht genommener Urlaub kann übertragen werden."]
    index = LexicalIndex.build(None, ["a", "b"], texts, ["a.md", "b.md"], [(), ()])
    assert index.languages == {"zh": 1, "de": 1}
    assert index.search("年假可以延续吗", 2)[0][0] == "a"
    assert index.search("Wird mein Urlaub übertragen?", 2)[0][0] == "b"


# --- an index saved by the old tokenizer -------------------------------------------------------------


def test_an_index_saved_by_the_english_only_tokenizer_is_rebuilt_with_a_warning(
    tmp_path: Path, embedder: Embedder, write_doc, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    docs = tmp_path / "docs"
    write_doc(docs, "nianjia.md", "年假", {"未休年假": "法定年假当年未休完的，可以延续到次年 3 月 31 日前使用。"})
    write_doc(docs, "vpn.md", "VPN", {"Connect": "Install Tailscale and log in with Okta."})
    config = IndexConfig(index_dir=tmp_path / "index")
    Indexer(config, embedder).run([docs], progress=False)
    folder = config.index_dir / "bm25"
    stamp = saved_stamp(folder)
    assert stamp is not None
    with monkeypatch.context() as old:  # what a qwenbot before this change saved for the same collection
        old.setattr(lexical, "ANALYZER", OLD_ANALYZER)
        old.setattr(lexical, "tokenize", english_only)
        lexical.build_lexical(open_collection(config), stamp).save(folder)
    assert json.loads((folder / "CURRENT").read_text(encoding="utf-8"))["analyzer"] == OLD_ANALYZER
    assert LexicalIndex.load(folder) is None  # not searched with tokens that no longer match

    with caplog.at_level(logging.WARNING, logger="retrieval.lexical"), Searcher(config, embedder) as searcher:
        hits = searcher.search("年假可以留到明年吗", k=2)
    assert hits[0].path == "nianjia.md" and hits[0].lexical_score, [h.path for h in hits]
    warning = [r.getMessage() for r in caplog.records if r.name == "retrieval.lexical"]
    assert len(warning) == 1 and f"built with tokenizer {OLD_ANALYZER}" in warning[0] and "rebuilt" in warning[0]
    assert json.loads((folder / "CURRENT").read_text(encoding="utf-8"))["analyzer"] == lexical.ANALYZER

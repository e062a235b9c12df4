"""Keyword-search tokens in any language: each text is tokenized in its own language.

Words of scripts with spaces are lower-cased, stripped of that language's function words and stemmed
with its Snowball stemmer (PyStemmer); a language without one (and Chinese, Japanese or Korean text's
Latin words: product names, commands) gets the English analyzer, which is also what every text got
before languages were told apart. Runs of Chinese, Japanese and Korean characters, which have no
spaces, become overlapping character bigrams ("年假申请" -> 年假 假申 申请), the same whatever the
text's language, so a Chinese term in an English question still matches the Chinese page. Bigrams
were measured against dictionary segmenters (jieba, Janome) by bench/bench_multilingual.py.

The language comes from py3langid, whose model ships inside the package (no download at run time).
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Callable, Iterable
from typing import Any

import Stemmer
from bm25s import stopwords as bm25s_stopwords

# Part of the BM25 index's analyzer version: a change here means indexes must be rebuilt.
TOKENIZER_VERSION = "lang1-cjk2"
DEFAULT_LANGUAGE = "en"
# Below this probability (py3langid's, over all its languages) a text is too short or too mixed to
# tell: it gets the default analyzer rather than a guess ("per diem" reads as Afrikaans at 0.12).
_MIN_CONFIDENCE = 0.5

# ISO 639-1 code -> Snowball algorithm, for the languages PyStemmer stems.
_SNOWBALL = {
    "ar": "arabic", "hy": "armenian", "eu": "basque", "ca": "catalan", "cs": "czech", "da": "danish",
    "nl": "dutch", "en": "english", "eo": "esperanto", "et": "estonian", "fi": "finnish", "fr": "french",
    "de": "german", "el": "greek", "hi": "hindi", "hu": "hungarian", "id": "indonesian", "ga": "irish",
    "it": "italian", "lt": "lithuanian", "ne": "nepali", "no": "norwegian", "nb": "norwegian",
    "nn": "norwegian", "fa": "persian", "pl": "polish", "pt": "portuguese", "ro": "romanian",
    "ru": "russian", "sr": "serbian", "es": "spanish", "sv": "swedish", "ta": "tamil", "tr": "turkish",
}  # fmt: skip
_STOPWORDS: dict[str, frozenset[str]] = {
    "en": frozenset(bm25s_stopwords.STOPWORDS_EN_PLUS),
    "da": frozenset(bm25s_stopwords.STOPWORDS_DANISH),
    "nl": frozenset(bm25s_stopwords.STOPWORDS_DUTCH),
    "fr": frozenset(bm25s_stopwords.STOPWORDS_FRENCH),
    "de": frozenset(bm25s_stopwords.STOPWORDS_GERMAN),
    "it": frozenset(bm25s_stopwords.STOPWORDS_ITALIAN),
    "no": frozenset(bm25s_stopwords.STOPWORDS_NORWEGIAN),
    "pt": frozenset(bm25s_stopwords.STOPWORDS_PORTUGUESE),
    "ru": frozenset(bm25s_stopwords.STOPWORDS_RUSSIAN),
    "es": frozenset(bm25s_stopwords.STOPWORDS_SPANISH),
    "sv": frozenset(bm25s_stopwords.STOPWORDS_SWEDISH),
    "tr": frozenset(bm25s_stopwords.STOPWORDS_TURKISH),
}
# py3langid's labels for Chinese varieties: one language for tokenizing and for the chunk's `lang`.
_ALIASES = {"wuu": "zh", "yue": "zh", "nb": "no", "nn": "no"}

# Single characters are words too ("vitamin D", "plan B", "step 3"); function words, question words
# included ("how", "what", "do"), are not: people ask in whole sentences. On SciFact (chunk level)
# these two choices took BM25 from nDCG@10 0.673 (Lucene's stop list, 2+ letter words) to 0.684.
_WORD = re.compile(r"\w+")
# Hiragana, katakana, CJK ideographs (and extension A, compatibility), Hangul syllables and jamo.
_CJK_CHARS = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af\u1100-\u11ff\u3130-\u318f"
_CJK_RUN = re.compile(f"[{_CJK_CHARS}]+")
_KANA = re.compile("[\u3040-\u30ff]")
_HANGUL = re.compile("[\uac00-\ud7af\u1100-\u11ff\u3130-\u318f]")
# Text that needs the CJK path: CJK characters, or full-width forms (ＶＰＮ, １２) that NFKC makes plain.
_NEEDS_CJK = re.compile(f"[{_CJK_CHARS}\uff00-\uffef]")

# A Stemmer must not be called from two threads at once (answer threads and the re-index thread
# tokenize concurrently): each thread gets its own, per language.
_local = threading.local()
_detector_lock = threading.Lock()
_detector: Any = None  # py3langid's LanguageIdentifier (the package has no type hints)


def _stemmer(language: str) -> Stemmer.Stemmer:
    stemmers: dict[str, Stemmer.Stemmer] | None = getattr(_local, "stemmers", None)
    if stemmers is None:
        stemmers = _local.stemmers = {}
    stemmer = stemmers.get(language)
    if stemmer is None:
        stemmer = stemmers[language] = Stemmer.Stemmer(_SNOWBALL[language])
    return stemmer


def analyzer_language(lang: str | None) -> str:
    """The language whose stop words and stemmer a text in `lang` is tokenized with."""
    lang = _ALIASES.get(lang or "", lang or "")
    return lang if lang in _SNOWBALL else DEFAULT_LANGUAGE


def _identifier() -> Any:
    """py3langid's identifier, loaded once (about a second); `rank` only reads it, from any thread."""
    global _detector
    with _detector_lock:
        if _detector is None:
            from py3langid.langid import MODEL_FILE, LanguageIdentifier

            _detector = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        return _detector


def detect_language(text: str, among: Iterable[str] | None = None) -> str:
    """The ISO 639-1 code of `text`'s language. With `among` (the languages an index holds), the most
    likely of those, however short the text; without, DEFAULT_LANGUAGE when the guess is unsure."""
    if not text.strip():
        return DEFAULT_LANGUAGE
    cjk = _cjk_language(text)
    if cjk is not None and (among is None or cjk in among):
        return cjk
    ranked = [(_ALIASES.get(lang, lang), p) for lang, p in _identifier().rank(text)]
    if among is not None:
        wanted = {_ALIASES.get(lang, lang) for lang in among}
        return next((lang for lang, _ in ranked if lang in wanted), DEFAULT_LANGUAGE)
    lang, p = ranked[0]
    return lang if p >= _MIN_CONFIDENCE else DEFAULT_LANGUAGE


def _cjk_language(text: str) -> str | None:
    """Chinese, Japanese or Korean, told by their scripts, when they are at least a third of the text's
    letters: py3langid reads "按照英文版《Kafka consumer lag》运行手册处理" as English."""
    cjk = sum(len(run) for run in _CJK_RUN.findall(text))
    if not cjk or 3 * cjk < sum(len(word) for word in _WORD.findall(text)):
        return None
    if _KANA.search(text):
        return "ja"
    return "ko" if _HANGUL.search(text) else "zh"


def cjk_bigrams(run: str) -> list[str]:
    """A run of CJK characters as overlapping bigrams; a lone character stays a word of its own."""
    if len(run) < 2:
        return [run]
    return [run[i : i + 2] for i in range(len(run) - 1)]


def _words(text: str, language: str) -> list[str]:
    stop = _STOPWORDS.get(language, frozenset())
    words = [w for w in _WORD.findall(text) if w not in stop]
    stems: list[str] = _stemmer(language).stemWords(words)
    return stems


def tokenize(text: str, lang: str | None = None, cjk: Callable[[str], list[str]] = cjk_bigrams) -> list[str]:
    """`text`'s keyword-search tokens, in `lang` (detected when None; see detect_language). `cjk` splits
    runs of CJK characters (bench/bench_multilingual.py measures segmenters through it)."""
    language = analyzer_language(lang if lang is not None else detect_language(text))
    text = text.lower()
    if not _NEEDS_CJK.search(text):
        return _words(text, language)
    text = unicodedata.normalize("NFKC", text)
    tokens: list[str] = []
    start = 0
    for run in _CJK_RUN.finditer(text):
        tokens += _words(text[start : run.start()], language)
        tokens += cjk(run.group())
        start = run.end()
    return tokens + _words(text[start:], language)

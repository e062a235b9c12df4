"""Keyword search in other languages: today's English-only tokenizer beside the project's, per language.

    python bench/bench_multilingual.py [--cache /tmp/qwenbot-bench-retrieval] [--docs docs_corpus]
                                       [--questions docs_corpus/questions_multilingual.jsonl]

docs_corpus (English and its intl/ section in Chinese, Japanese, German and Spanish) is indexed by the
project's indexer; its chunks are then searched by BM25 alone (Lucene k1/b, document rank = best chunk)
with three tokenizers over the same chunks:

- english: the tokenizer before languages were told apart (words split on \\w+, English stop words and
  Snowball stemmer for every text: a Chinese sentence is one "word");
- bigrams: the project's (retrieval/tokenize.py: each chunk in its own language, CJK as character bigrams);
- segmenter: the same, with CJK runs cut into words by jieba (Chinese) and Janome (Japanese) instead.

Then the bot's own search: keyword alone (QWENBOT_DENSE_WEIGHT=0) and hybrid with the default model.
nDCG@10 per question language ("en" questions ask about the other languages' documents).
jieba and Janome are needed only here: `pip install jieba janome`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

import bm25s
import numpy as np
import Stemmer
from bench_retrieval import CachingEmbedder, EvalSet, build_index
from bm25s.stopwords import STOPWORDS_EN_PLUS

from retrieval.config import IndexConfig
from retrieval.embeddings import get_embedder
from retrieval.evaluation import RANK_K, Question, load_questions, ndcg_at_k, ranked_documents
from retrieval.fusion import top_k_indices
from retrieval.lexical import BM25_B, BM25_K1, lexical_text
from retrieval.search import Searcher
from retrieval.store import iter_collection, open_collection
from retrieval.tokenize import analyzer_language, detect_language, tokenize

ROOT = Path(__file__).resolve().parent.parent
Tokenizer = Callable[[str, str | None], list[str]]  # (text, its language or None for a question)

_OLD_WORD = re.compile(r"\w+")
_OLD_STOP = frozenset(STOPWORDS_EN_PLUS)
_OLD_STEMMER = Stemmer.Stemmer("english")


def english(text: str, lang: str | None) -> list[str]:
    """The tokenizer before this change, as it was (retrieval/lexical.py at 28eb067)."""
    stems: list[str] = _OLD_STEMMER.stemWords([w for w in _OLD_WORD.findall(text.lower()) if w not in _OLD_STOP])
    return stems


def segmenter() -> Callable[[str], Callable[[str], list[str]]]:
    """Per language, a function cutting a CJK run into words: Janome for Japanese, jieba otherwise."""
    import jieba
    from janome.tokenizer import Tokenizer as Janome

    jieba.setLogLevel(60)
    janome = Janome(wakati=True)

    def ja(run: str) -> list[str]:
        return [str(w) for w in janome.tokenize(run) if str(w).strip()]

    def zh(run: str) -> list[str]:
        return [w for w in jieba.lcut(run) if w.strip()]

    return lambda lang: ja if lang == "ja" else zh


def bm25_documents(
    chunks: list[tuple[str, str, str]], questions: list[tuple[Question, str]], tok: Tokenizer
) -> list[list[str]]:
    """Per question, the documents ranked by their best chunk's BM25 score."""
    bm25 = bm25s.BM25(k1=BM25_K1, b=BM25_B, method="lucene")
    bm25.index([tok(text, lang) for _, text, lang in chunks], show_progress=False)
    out: list[list[str]] = []
    for question, lang in questions:
        ids = bm25.get_tokens_ids(tok(question.question, lang))
        if not ids:
            out.append([])
            continue
        scores = bm25.get_scores_from_ids(ids)
        best = [int(i) for i in top_k_indices(scores, 100) if scores[i] > 0]
        out.append(list(dict.fromkeys(chunks[i][0] for i in best)))
    return out


def by_language(questions: list[tuple[Question, str]], ranked: list[list[str]]) -> dict[str, float]:
    groups: dict[str, list[float]] = {}
    for (question, _), docs in zip(questions, ranked, strict=True):
        lang = question.id.split("-")[1]
        groups.setdefault(lang, []).append(ndcg_at_k(docs, set(question.sources), RANK_K))
    return {lang: float(np.mean(v)) for lang, v in groups.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/qwenbot-bench-retrieval"))
    parser.add_argument("--docs", type=Path, default=ROOT / "docs_corpus")
    parser.add_argument("--questions", type=Path, default=ROOT / "docs_corpus" / "questions_multilingual.jsonl")
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    config = dataclasses.replace(IndexConfig(index_dir=args.cache), collection="bench")
    embedder = CachingEmbedder(get_embedder(config.embedding_model), args.cache)
    config = build_index(embedder, args.cache, EvalSet("docs_corpus", args.docs, args.questions), config)
    embedder.save()
    chunks: list[tuple[str, str, str]] = []  # (path, lexical text, language)
    for page in iter_collection(open_collection(config), ["documents", "metadatas"]):
        for doc, meta in zip(page["documents"], page["metadatas"], strict=True):
            text = lexical_text(meta.get("title", ""), meta.get("heading_path", ""), doc or "")
            chunks.append((meta["path"], text, meta["lang"]))
    languages = sorted({lang for _, _, lang in chunks})
    print("chunks per language:", {lang: sum(c[2] == lang for c in chunks) for lang in languages})
    questions = [(q, detect_language(q.question, among=languages)) for q in load_questions(args.questions)]
    wrong = [(q.id, lang) for q, lang in questions if analyzer_language(lang) != analyzer_language(q.id.split("-")[1])]
    print(f"questions told a language whose analyzer is not their own: {wrong or 'none'}")
    split = segmenter()
    rows: dict[str, dict[str, float]] = {
        "BM25, english (before)": by_language(questions, bm25_documents(chunks, questions, english)),
        "BM25, bigrams (project)": by_language(questions, bm25_documents(chunks, questions, tokenize)),
        "BM25, segmenter": by_language(
            questions,
            bm25_documents(chunks, questions, lambda text, lang: tokenize(text, lang, split(lang or "en"))),
        ),
    }
    for name, dense_weight in (("bot, keyword only", 0.0), ("bot, hybrid (default)", config.dense_weight)):
        with Searcher(dataclasses.replace(config, dense_weight=dense_weight), embedder) as searcher:
            ranked = [ranked_documents(searcher.search(q.question, k=RANK_K)) for q, _ in questions]
        rows[name] = by_language(questions, ranked)
    groups = list(dict.fromkeys(q.id.split("-")[1] for q, _ in questions))
    counts = {g: sum(q.id.split("-")[1] == g for q, _ in questions) for g in groups}
    print(f"\nnDCG@10 on {args.questions.name}, by the question's language (questions)")
    print(f"{'':<26}" + "".join(f"{f'{g} ({counts[g]})':>10}" for g in groups))
    for name, scores in rows.items():
        print(f"{name:<26}" + "".join(f"{scores[g]:>10.4f}" for g in groups))
    print(json.dumps(rows), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

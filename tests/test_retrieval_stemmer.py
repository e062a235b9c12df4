"""The BM25 tokenizer is called from answer threads and the re-index thread at once; PyStemmer's
stemmers must not be shared across threads, so each thread has its own. Results must not depend on it."""

from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor

from retrieval.tokenize import tokenize

_WORDS = (
    "running runner runs ran generously generalization connection connected connecting happiness "
    "vacation vacations policies policy employees employing deployment deploys rollback rolling "
    "relational organizational internationalization caresses ponies ties caress cats feed agreed "
    "plastered motoring sing conflated troubled sized hopping tanned falling hissing fizzed failing "
    "filing happy sky relational conditional rational valenci hesitanci digitizer conformabli "
    "radicalli differentli vileli analogousli vietnamization predication operator feudalism "
    "decisiveness hopefulness callousness formaliti sensitiviti sensibiliti triplicate formative "
    "formalize electriciti electrical hopeful goodness revival allowance inference airliner "
    "gyroscopic adjustable defensible irritant replacement adjustment dependent adoption homologou "
    "communism activate angulariti homologous effective bowdlerize probate rate cease controll roll"
).split()


def _texts(count: int) -> list[str]:
    rng = random.Random(20260203)
    return [" ".join(rng.choice(_WORDS) for _ in range(rng.randint(1, 60))) for _ in range(count)]


def test_tokenize_gives_the_same_tokens_from_many_threads() -> None:
    texts = _texts(4000)
    expected = [tokenize(t) for t in texts]
    start = threading.Barrier(8)

    def work(offset: int) -> list[tuple[int, list[str]]]:
        start.wait()  # all threads stem at once
        order = list(range(len(texts)))
        random.Random(offset).shuffle(order)
        return [(i, tokenize(texts[i])) for i in order]

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(work, range(8)))
    for result in results:
        assert len(result) == len(texts)
        for i, tokens in result:
            assert tokens == expected[i], texts[i]


def test_each_thread_stems_with_its_own_stemmer() -> None:
    from retrieval import tokenize as tokenizing

    seen: list[object] = []
    lock = threading.Lock()

    def grab() -> None:
        tokenize("running")
        with lock:
            seen.append(tokenizing._stemmer("en"))

    threads = [threading.Thread(target=grab) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(s) for s in seen}) == 4

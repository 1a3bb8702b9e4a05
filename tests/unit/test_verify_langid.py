"""`rlmr.verify.langid` returns exactly what `langdetect.detect` returns (seed 0), on every kind of
text."""

from __future__ import annotations

import random

import langdetect
import pytest

from rlmr.verify.langid import LanguageIdentifier

SAMPLES = [
    "The quick brown fox jumps over the lazy dog while the farmer watches from the porch.",
    "Le renard brun rapide saute par-dessus le chien paresseux pendant que le fermier regarde.",
    "Der schnelle braune Fuchs springt über den faulen Hund, während der Bauer zusieht.",
    "El rápido zorro marrón salta sobre el perro perezoso mientras el granjero mira.",
    "Быстрая коричневая лиса прыгает через ленивую собаку, пока фермер смотрит.",
    "素早い茶色の狐が怠け者の犬を飛び越え、農夫がそれを見ている。",
    "敏捷的棕色狐狸跳过了懒狗，农夫在门廊上看着。",
    "빠른 갈색 여우가 게으른 개를 뛰어넘고 농부가 지켜본다.",
    "Nhanh chóng con cáo nâu nhảy qua con chó lười biếng.",
    "الثعلب البني السريع يقفز فوق الكلب الكسول بينما يراقب المزارع.",
    "तेज़ भूरी लोमड़ी आलसी कुत्ते के ऊपर कूदती है।",
    "Il veloce volpe marrone salta sopra il cane pigro.",
    "A rápida raposa marrom pula sobre o cão preguiçoso.",
    "Szybki brązowy lis przeskakuje nad leniwym psem.",
    "HELLO THERE MY FRIEND, HOW ARE YOU TODAY?",
    "hello there my friend, how are you today?",
    "Visit https://example.com/path?q=1 or write to someone@example.org today, friend.",
    "ok",
    "a",
    "Ja",
    "Thx!",
    "ÉÉÉ",
    "Ph.D. U.S.A. NASA ESA",
    "12345 67890",
    "!!! ??? ...",
    "",
    "   ",
    "🙂🙂🙂",
    "Mixed text: the cat is sleeping. Le chat dort. Die Katze schläft. El gato duerme.",
]


def _langdetect(text: str) -> str | None:
    try:
        return langdetect.detect(text)
    except langdetect.LangDetectException:
        return None


@pytest.fixture(scope="module")
def seeded():
    saved = langdetect.DetectorFactory.seed
    langdetect.DetectorFactory.seed = 0
    yield
    langdetect.DetectorFactory.seed = saved


def _corpus() -> list[str]:
    rng = random.Random(7)
    texts = list(SAMPLES)
    for _ in range(120):  # random splices of languages and lengths, including mid-word cuts
        a, b = rng.choice(SAMPLES), rng.choice(SAMPLES)
        texts.append(
            a[: rng.randint(0, len(a))] + rng.choice([" ", "\n", ""]) + b[rng.randint(0, len(b)) :]
        )
    texts.append(" ".join(SAMPLES) * 40)  # past langdetect's 10,000-character cut
    texts.append("word " * 3000)
    return texts


def test_identical_to_langdetect(seeded):
    ours = LanguageIdentifier(seed=0)
    texts = _corpus()
    assert [ours.detect(t) for t in texts] == [_langdetect(t) for t in texts]


def test_identical_when_every_trial_needs_more_draws_than_first_prepared(seeded):
    ours = LanguageIdentifier(seed=0)
    ours.first_blocks = 1  # forces the path that draws and prepares more blocks mid-trial
    texts = _corpus()[:60]
    assert [ours.detect(t) for t in texts] == [_langdetect(t) for t in texts]


def test_no_usable_characters_is_none_as_langdetect_raises():
    ours = LanguageIdentifier(seed=0)
    assert ours.detect("12345 !!!") is None
    assert ours.detect("") is None


def test_memo_does_not_change_answers(seeded):
    ours = LanguageIdentifier(seed=0)
    texts = _corpus()[:40]
    first = [ours.detect(t) for t in texts]
    ours.clear_caches()
    assert [ours.detect(t) for t in reversed(texts)] == list(reversed(first))


def test_fallback_to_langdetect_itself_gives_the_same_answers(seeded):
    ours = LanguageIdentifier(seed=0)
    ours._stream = None  # what the start-up self-check does when `random` draws differently
    texts = _corpus()[:30]
    assert [ours.detect(t) for t in texts] == [_langdetect(t) for t in texts]


@pytest.mark.parametrize("first_blocks", [16, 1])
def test_many_texts_at_once_identical_to_langdetect(seeded, first_blocks):
    """All texts' trials side by side (texts converging at different blocks, drawing more at
    different times, deciding after different trials, some with no usable n-gram)."""
    ours = LanguageIdentifier(seed=0)
    ours.first_blocks = first_blocks
    texts = _corpus()
    assert ours.detect_many(texts) == [_langdetect(t) for t in texts]


def test_python_sum_row_by_row_gives_the_same_answers(seeded, monkeypatch):
    """The path Python 3.12+ takes (its `sum` compensates rounding, so no numpy accumulate)."""
    import rlmr.verify.langid as langid

    monkeypatch.setattr(langid, "_SUM_IS_SEQUENTIAL", False)
    ours = LanguageIdentifier(seed=0)
    texts = _corpus()[:60]
    assert ours.detect_many(texts) == [_langdetect(t) for t in texts]


def test_accumulate_is_what_python_sum_gives_here():
    """Where `_SUM_IS_SEQUENTIAL` holds, numpy's accumulate and Python's sum agree bit for bit on
    rows like langdetect's (55 probabilities spanning many magnitudes)."""
    import numpy as np

    import rlmr.verify.langid as langid

    rng = np.random.default_rng(0)
    rows = rng.random((200, 55)) ** rng.integers(1, 40, size=(200, 55))
    if langid._SUM_IS_SEQUENTIAL:
        totals = LanguageIdentifier(seed=0)._totals(rows)
        assert totals.tolist() == [sum(r) for r in rows.tolist()]


def _junk(count: int = 10) -> list[str]:
    rng = random.Random(3)
    return [
        " ".join(
            "".join(chr(rng.randint(0x1F300, 0x1FAFF)) for _ in range(4)) + " word"
            for _ in range(20)
        )
        for _ in range(count)
    ]


def _gram_of_code(code: int) -> str:
    """The n-gram `lang_profiles.gram_codes` made `code` of: 21 bits a character, plus one."""
    chars = []
    while code:
        chars.append(chr((code & (2**21 - 1)) - 1))
        code >>= 21
    return "".join(reversed(chars))


def _langdetect_ngrams(ours: LanguageIdentifier, text: str) -> list[str]:
    from langdetect import detector_factory
    from langdetect.detector import Detector

    detector_factory.init_factory()
    detector = Detector(detector_factory._factory)
    detector.append(text)
    detector.cleaning_text()
    return detector._extract_ngrams()


def test_ngrams_are_langdetects_own_in_its_order(seeded):
    """Each text's n-grams, position by position, are the list langdetect's Detector extracts
    (capital runs, double spaces, punctuation normalised to spaces, scripts outside the BMP)."""
    ours = LanguageIdentifier(seed=0)
    texts = _corpus() + _junk(3) + ["ABC def GHi jKL", "a  b", "x\ud800y ok", "IT'S OK. Yes."]
    got = ours._ngram_rows([ours._clean(text) for text in texts])
    gram_of_row = {
        int(row): _gram_of_code(int(ours._gram_codes[k]))
        for k, row in enumerate(ours._row_of)
        if row >= 0
    }
    for text, rows in zip(texts, got):
        assert [gram_of_row[int(row)] for row in rows] == _langdetect_ngrams(ours, text), text


def test_junk_text_takes_no_profile_rows(seeded):
    """Junk text (emoji, rare scripts) makes new n-grams without end; only grams some profile
    holds take a row, so the identifier's memory is bounded by the profiles."""
    ours = LanguageIdentifier(seed=0)
    texts = _junk() + _corpus()[:20]
    assert ours.detect_many(texts) == [_langdetect(t) for t in texts]
    used = set().union(*(_langdetect_ngrams(ours, t) for t in texts))
    assert ours._n_rows == len(used) == int((ours._row_of >= 0).sum())

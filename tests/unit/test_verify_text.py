"""Per-response measurements: the sentence-count bound the IFEval rule relies on, and the
capital-word count."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from rlmr.verify.text import TextStats, sentence_tokenizer, treebank_word_tokenizer

PIECES = [
    "Dr.",
    "Mr.",
    "U.S.A.",
    "3.14",
    "...",
    ". . .",
    "!!!",
    "?!",
    "?",
    "!",
    ".",
    "e.g.",
    "(Hi.)",
    '"Yes."',
    "word",
    "Word",
    "WORD",
    "I'm",
    "DON'T",
    "can't",
    "\n",
    "\n\n",
    " ",
    "  ",
    "'",
    '"',
    "--",
    "Ph.D.",
    "etc.",
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=40).map(" ".join))
def test_sentence_count_never_exceeds_the_cheap_bound(text):
    stats = TextStats(text)
    assert len(sentence_tokenizer().tokenize(text)) <= stats.sentence_count_bound


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=40).map(" ".join), st.integers(0, 12))
def test_capital_word_count_and_its_early_exit_equal_nltk_word_tokenize(text, n):
    tokens = [
        t
        for s in sentence_tokenizer().tokenize(text)
        for t in treebank_word_tokenizer().tokenize(s)
    ]
    expected = sum(1 for t in tokens if t.isupper())
    assert TextStats(text).capital_word_count == expected
    assert TextStats(text).capital_words_reach(n) is (expected >= n)

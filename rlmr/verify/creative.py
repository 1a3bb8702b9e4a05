"""Creative-writing constraints a writing prompt really carries, checked by rule.

Types (kwargs; every count range takes `min` and/or `max`, both inclusive):
- `creative:word_count` {min, max}: words = whitespace-separated tokens that
  hold a letter or digit ("don't" and "well-known" are one word each);
- `creative:sentence_count` {min, max}: Punkt sentences (as IFEval);
- `creative:paragraph_count` {min, max}: blocks separated by blank lines (a
  title standing alone in the first block is not a paragraph);
- `creative:must_mention` {items, case_sensitive=false, min_count=1}: every
  named character or object occurs as a whole word or phrase (curly and
  straight apostrophes are the same; "Mira's" mentions "Mira");
- `creative:forbidden_words` {words, case_sensitive=false}: none occurs as a
  whole word or phrase;
- `creative:opening_line` {text} / `creative:closing_line` {text}: the text
  (after a title line, if any) starts / ends with these words, compared word by
  word, ignoring case, punctuation and markdown;
- `creative:title` {text=null}: the first line is a title (<<T>>, # T, **T**,
  *T*, __T__ or "Title: T") followed by more text; with `text`, its words match;
- `creative:stanza_count` {min, max}: blank-line separated blocks after the title;
- `creative:line_count` {min, max}: non-blank lines after the title;
- `creative:dialogue` {present}: quoted speech ("...", “...”, ‘...’, «...» of
  two or more words or ending in punctuation, or em-dash dialogue lines) is
  present (true) or absent (false);
- `creative:narration` {person: first|second|third}: outside dialogue,
  first-person pronouns (I, me, my, we, us, our, ...) or second-person ones
  (you, your, ...) make up at least 1.5% of the words (at least 2 of them): the
  more frequent of the two decides; otherwise the narration is third person.
Each rule returns (passed, detail); an empty response fails every constraint.
"""

from __future__ import annotations

import re

from rlmr.verify.constraints import (
    Kwarg,
    KwargError,
    boolean,
    choice,
    define,
    integer,
    text,
    text_list,
)
from rlmr.verify.text import STRAIGHT_QUOTES, TextStats, comparable_words

PERSON_RATE = 0.015
PERSON_MIN_COUNT = 2
FIRST_PERSON = frozenset(
    "i me my mine myself we us our ours ourselves i'm i've i'll i'd we're we've we'll we'd".split()
)
SECOND_PERSON = frozenset(
    "you your yours yourself yourselves you're you've you'll you'd ya".split()
)


def _range_detail(what: str, value: int, a) -> tuple[bool, str]:
    lo, hi = a["min"], a["max"]
    ok = (lo is None or value >= lo) and (hi is None or value <= hi)
    want = f"{lo if lo is not None else 0}..{hi if hi is not None else 'inf'}"
    return ok, f"{value} {what}, need {want}"


def word_count(s: TextStats, a):
    return _range_detail("words", s.word_count, a)


def sentence_count(s: TextStats, a):
    return _range_detail("sentences", s.sentence_count, a)


def paragraph_count(s: TextStats, a):
    return _range_detail("paragraphs", len(s.body_blocks), a)


def stanza_count(s: TextStats, a):
    return _range_detail("stanzas", len(s.body_blocks), a)


def line_count(s: TextStats, a):
    return _range_detail("lines", len(s.body_lines), a)


def must_mention(s: TextStats, a):
    missing = [
        item
        for item, pattern in a["patterns"]
        if len(pattern.findall(s.normalized)) < a["min_count"]
    ]
    if missing:
        return False, "missing: " + ", ".join(missing)
    return True, ""


def forbidden_words(s: TextStats, a):
    found = [item for item, pattern in a["patterns"] if pattern.search(s.normalized)]
    if found:
        return False, "found: " + ", ".join(found)
    return True, ""


def opening_line(s: TextStats, a):
    want = a["words"]
    got = s.body_words[: len(want)]
    return got == want, "" if got == want else "opens with: " + " ".join(got)


def closing_line(s: TextStats, a):
    want = a["words"]
    got = s.body_words[-len(want) :]
    return got == want, "" if got == want else "closes with: " + " ".join(got)


def title(s: TextStats, a):
    if s.title_text is None:
        return False, "no title line"
    if a["words"] is not None and comparable_words(s.title_text) != a["words"]:
        return False, f"title is {s.title_text!r}"
    return True, ""


def dialogue(s: TextStats, a):
    spans = s.dialogue
    if a["present"]:
        return bool(spans), "" if spans else "no dialogue"
    return not spans, "" if not spans else f"dialogue: {spans[0][:60]}"


def narration_person(s: TextStats) -> tuple[str, int, int, int]:
    """(person, first-person count, second-person count, words) of the narration outside
    dialogue."""
    words = comparable_words(s.narration)
    first = sum(1 for w in words if w in FIRST_PERSON)
    second = sum(1 for w in words if w in SECOND_PERSON)
    need = max(PERSON_MIN_COUNT, PERSON_RATE * len(words))
    if first >= need and first >= second:
        person = "first"
    elif second >= need:
        person = "second"
    else:
        person = "third"
    return person, first, second, len(words)


def narration(s: TextStats, a):
    person, first, second, n = narration_person(s)
    detail = (
        f"{person} person ({first} first-person, {second} second-person pronouns "
        f"in {n} narrative words)"
    )
    return person == a["person"], detail


# --------------------------------------------------------------------------- kwargs


def _prepare_range(kw):
    lo, hi = kw["min"], kw["max"]
    if lo is None and hi is None:
        raise KwargError("min: give min, max or both")
    if lo is not None and hi is not None and lo > hi:
        raise KwargError(f"max: must be >= min ({lo}), got {hi}")
    return dict(kw)


def _phrase_pattern(phrase: str, case_sensitive: bool) -> re.Pattern:
    words = phrase.translate(STRAIGHT_QUOTES).split()
    body = r"\s+".join(re.escape(w) for w in words)
    return re.compile(r"(?<!\w)" + body + r"(?!\w)", 0 if case_sensitive else re.IGNORECASE)


def _prepare_mention(kw):
    return {
        "patterns": tuple(
            (item, _phrase_pattern(item, kw["case_sensitive"])) for item in kw["items"]
        ),
        "min_count": kw["min_count"],
    }


def _prepare_forbidden(kw):
    return {
        "patterns": tuple(
            (item, _phrase_pattern(item, kw["case_sensitive"])) for item in kw["words"]
        )
    }


def _prepare_line(kw):
    words = comparable_words(kw["text"])
    if not words:
        raise KwargError(f"text: holds no words, got {kw['text']!r}")
    return {"words": words}


def _prepare_title(kw):
    words = comparable_words(kw["text"]) if kw["text"] is not None else None
    if words == []:
        raise KwargError(f"text: holds no words, got {kw['text']!r}")
    return {"words": words}


_COUNT_RANGE = {"min": Kwarg(integer(0), required=False), "max": Kwarg(integer(0), required=False)}


def _register(name, check, kwargs=None, prepare=None, description=""):
    def on_visible_text(s: TextStats, a):  # what a reader sees: no zero-width tricks
        return check(s.visible, a)

    define(name, on_visible_text, kwargs, prepare, description, family="creative")


_register("creative:word_count", word_count, _COUNT_RANGE, _prepare_range, "words in [min, max]")
_register(
    "creative:sentence_count",
    sentence_count,
    _COUNT_RANGE,
    _prepare_range,
    "Punkt sentences in [min, max]",
)
_register(
    "creative:paragraph_count",
    paragraph_count,
    _COUNT_RANGE,
    _prepare_range,
    "blank-line separated paragraphs after the title in [min, max]",
)
_register(
    "creative:stanza_count",
    stanza_count,
    _COUNT_RANGE,
    _prepare_range,
    "stanzas after the title in [min, max]",
)
_register(
    "creative:line_count",
    line_count,
    _COUNT_RANGE,
    _prepare_range,
    "non-blank lines after the title in [min, max]",
)
_register(
    "creative:must_mention",
    must_mention,
    {
        "items": Kwarg(text_list()),
        "case_sensitive": Kwarg(boolean, required=False, default=False),
        "min_count": Kwarg(integer(1), required=False, default=1),
    },
    _prepare_mention,
    "each named character or object occurs as a whole word or phrase",
)
_register(
    "creative:forbidden_words",
    forbidden_words,
    {"words": Kwarg(text_list()), "case_sensitive": Kwarg(boolean, required=False, default=False)},
    _prepare_forbidden,
    "no forbidden word or phrase occurs",
)
_register(
    "creative:opening_line",
    opening_line,
    {"text": Kwarg(text())},
    _prepare_line,
    "the text after the title starts with these words",
)
_register(
    "creative:closing_line",
    closing_line,
    {"text": Kwarg(text())},
    _prepare_line,
    "the text ends with these words",
)
_register(
    "creative:title",
    title,
    {"text": Kwarg(text(), required=False)},
    _prepare_title,
    "the first line is a title (optionally this one)",
)
_register(
    "creative:dialogue",
    dialogue,
    {"present": Kwarg(boolean)},
    description="quoted speech present / absent",
)
_register(
    "creative:narration",
    narration,
    {"person": Kwarg(choice("first", "second", "third"))},
    description="first-, second- or third-person narration",
)

CREATIVE_TYPES = (
    "creative:word_count",
    "creative:sentence_count",
    "creative:paragraph_count",
    "creative:must_mention",
    "creative:forbidden_words",
    "creative:opening_line",
    "creative:closing_line",
    "creative:title",
    "creative:stanza_count",
    "creative:line_count",
    "creative:dialogue",
    "creative:narration",
)

"""IFEval rules on responses made to sit on every boundary, checked against the live reference.

Each case is one (instruction, kwargs, response): exactly N words and N +- 1,
sentence counts around abbreviations and decimals, empty and whitespace-only
responses, unicode, text far longer than langdetect's 10,000-character cut,
loose-mode variants (a chatty first line, asterisks). The reference's strict
and loose verdicts are computed in the test; a few verdicts are also spelled
out, so the test states what the rules mean and not only that they agree.
"""

from __future__ import annotations

import pytest

from rlmr.tools.ifeval_reference import ReferenceRow, reference_verdicts
from rlmr.verify import verify_batch


def words(n: int, word: str = "word") -> str:
    return " ".join([word] * n)


LONG_EN = (
    "The quiet river ran past the old mill, and the miller's daughter counted the boats. " * 400
).strip()
FRENCH = "Le petit chat dort sur la chaise pendant que la pluie tombe doucement sur le jardin."
GERMAN = "Der kleine Hund schläft unter dem Tisch, während draußen der Regen fällt."
RUSSIAN = "Маленькая кошка спит на стуле, пока за окном идёт дождь."
JAPANESE = "小さな猫は雨が降っている間、椅子の上で眠っています。"

CASES: list[tuple[str, dict, str]] = []


def case(iid: str, kwargs: dict, *responses: str) -> None:
    for response in responses:
        CASES.append((iid, kwargs, response))


# Length: exactly N, N - 1, N + 1 words (runs of \w), both relations.
for n in (1, 5, 100):
    for rel in ("at least", "less than"):
        case(
            "length_constraints:number_words",
            {"num_words": n, "relation": rel},
            words(n),
            words(n - 1),
            words(n + 1),
            words(n, "naïve-café"),
            words(n, "don't"),
        )
case(
    "length_constraints:number_words",
    {"num_words": 3, "relation": "at least"},
    "",
    "   \n\t ",
    "一 二 三",
    "emoji 🙂 test 🙂",
    "well-known fact",
    "a,b,c",
)
case(
    "length_constraints:number_words",
    {"num_words": 20000, "relation": "less than"},
    words(19999),
    words(20000),
)
# Sentences: Punkt around abbreviations, decimals, ellipses, quotes.
for n in (1, 3, 4):
    for rel in ("at least", "less than"):
        case(
            "length_constraints:number_sentences",
            {"num_sentences": n, "relation": rel},
            "One. Two. Three.",
            "Dr. Smith paid $3.50 for it. He left. Done!",
            "Wait... what? Yes. No.",
            'He said "stop." She ran. They hid.',
            "No final period",
            "U.S.A. is big. Yes.",
        )
case(
    "length_constraints:number_sentences", {"num_sentences": 900, "relation": "less than"}, LONG_EN
)
# Paragraphs with the *** divider.
for n in (1, 2, 3):
    case(
        "length_constraints:number_paragraphs",
        {"num_paragraphs": n},
        "a",
        "a\n***\nb",
        "a *** b *** c",
        "***\na\n***\nb\n***",
        "a\n***\n\n***\nb",
        "a\n* * *\nb",
        "a****b",
    )
case(
    "length_constraints:nth_paragraph_first_word",
    {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "Then"},
    "First.\n\nThen more.",
    'First.\n\n"Then," he said.',
    "First.\n\nthen",
    "First.\n\nThenceforth.",
    "First.\n\n\n\nThen.",
    "\n\nFirst.\n\nThen.",
    "First.\n\nThen.\n\nExtra.",
    "First.\nThen.",
)
case(
    "length_constraints:nth_paragraph_first_word",
    {"num_paragraphs": 3, "nth_paragraph": 1, "first_word": "it's"},
    "It's here.\n\nB\n\nC",
    "'It's' here.\n\nB\n\nC",
    "It.\n\nB\n\nC",
)
# Content and format.
case(
    "detectable_content:number_placeholders",
    {"num_placeholders": 2},
    "[a] and [b]",
    "[a]",
    "[[a]]",
    "[a][b][c]",
    "[\n]x[y]",
    "no placeholders",
)
case(
    "detectable_content:postscript",
    {"postscript_marker": "P.S."},
    "Text.\nP.S. more",
    "Text.\np. s. more",
    "Text. P.S.",
    "Text.\nPS more",
)
case(
    "detectable_content:postscript",
    {"postscript_marker": "P.P.S"},
    "Text.\nP.P.S hi",
    "Text.\nP. P. S hi",
    "P.S. hi",
)
case(
    "detectable_format:number_bullet_lists",
    {"num_bullets": 2},
    "* a\n* b",
    "- a\n- b",
    "* a\n- b\n- c",
    "**a**\n* b",
    "  * a\n\t- b",
    "*a\n*b",
    "* a",
)
case(
    "detectable_format:constrained_response",
    {},
    "My answer is yes.",
    "My answer is Yes.",
    "x My answer is maybe. y",
)
case(
    "detectable_format:number_highlighted_sections",
    {"num_highlights": 2},
    "*a* and *b*",
    "**a**",
    "*a*\n*b*",
    "* *",
    "*a\nb*",
    "***a***",
    "**a** and *b*",
)
case(
    "detectable_format:multiple_sections",
    {"section_spliter": "SECTION", "num_sections": 2},
    "SECTION 1\na\nSECTION 2\nb",
    "SECTION 1 only",
    "Section 1\nSection 2",
    "SECTION1 SECTION2",
)
case(
    "detectable_format:json_format",
    {},
    '{"a": 1}',
    '```json\n{"a": 1}\n```',
    "```JSON\n[1, 2]\n```",
    "{a: 1}",
    "null",
    "12",
    '```\n{"a": 1}',
    "",
)
case("detectable_format:title", {}, "<<Title>>\nbody", "<< >>", "<<\n>>", "<<a>><<b>>", "<Title>")
case(
    "combination:two_responses",
    {},
    "one ****** two",
    "one ****** one",
    "******one******two******",
    "one ****** ****** two",
    "only one",
)
case(
    "combination:repeat_prompt",
    {"prompt_to_repeat": "Write a poem about cats."},
    "Write a poem about cats. Meow.",
    "  write a POEM about cats. x",
    "Sure! Write a poem about cats.",
    "Sure!\nWrite a poem about cats.",
)
case(
    "startend:end_checker",
    {"end_phrase": "Any other questions?"},
    "Text. Any other questions?",
    'Text. "Any other questions?"',
    "Text. any other questions?  \n",
    "Any other questions? Yes.",
    "Text.\nAny other questions?\n*",
)
case("startend:quotation", {}, '"quoted"', '  "quoted"  ', '"', '""', '"a" b', "'single'")
case("punctuation:no_comma", {}, "no commas here", "one, comma", "ideographic、comma", "")
# Case and language.
case(
    "change_case:capital_word_frequency",
    {"capital_frequency": 3, "capital_relation": "at least"},
    "ONE TWO THREE",
    "ONE TWO three",
    "DON'T STOP",
    "I'M FINE",
    "U.S.A. IS BIG",
    "WELL-KNOWN FACT IS",
    "A B C",
    "NASA's rocket flew",
    '"HELLO," SHE SAID. "BYE."',
    "Ünïcödé ÄÖÜ ÉÉ ÀÀ",
)
case(
    "change_case:capital_word_frequency",
    {"capital_frequency": 2, "capital_relation": "less than"},
    "ONE two",
    "ONE TWO",
    "one two",
    "CANNOT",
    "GONNA WIN",
)
case(
    "change_case:english_capital",
    {},
    "HELLO THERE MY FRIEND",
    "BONJOUR MON AMI COMMENT ÇA VA",
    "1234 5678",
    "Hello There",
    "HELLO 🙂",
)
case(
    "change_case:english_lowercase",
    {},
    "hello there my friend",
    "bonjour mon ami comment ça va",
    "1234",
    "hello There",
    LONG_EN.lower(),
)
for lang in ("en", "fr", "de", "ru", "ja"):
    case(
        "language:response_language",
        {"language": lang},
        FRENCH,
        GERMAN,
        RUSSIAN,
        JAPANESE,
        LONG_EN,
        "1234 !!",
        FRENCH + " The end of the story.",
        "Sure, here it is:\n" + FRENCH,
    )
# Keywords.
case(
    "keywords:existence",
    {"keywords": ["cat", "dog"]},
    "a cat and a dog",
    "a CAT and a DOG",
    "category dogma",
    "a cat",
)
case(
    "keywords:frequency",
    {"keyword": "cat", "frequency": 2, "relation": "at least"},
    "cat cat",
    "cat",
    "Cat CAT",
    "concatenate cat",
)
case(
    "keywords:frequency",
    {"keyword": "cat", "frequency": 2, "relation": "less than"},
    "cat cat",
    "cat",
    "",
)
case(
    "keywords:forbidden_words",
    {"forbidden_words": ["cat", "dog"]},
    "a bird",
    "a cat",
    "category",
    "DOG!",
)
case(
    "keywords:letter_frequency",
    {"letter": "e", "let_frequency": 3, "let_relation": "at least"},
    "eee",
    "ee",
    "EEe",
    "éée",
)
case(
    "keywords:letter_frequency",
    {"letter": "!", "let_frequency": 2, "let_relation": "less than"},
    "!",
    "!!",
    "",
)
# Loose-mode variants: a chatty first line, a trailing remark, asterisks.
case("startend:quotation", {}, 'Sure, here it is:\n"quoted"', '"quoted"\nHope this helps!')
case("punctuation:no_comma", {}, "Sure, here it is:\nno commas here", "*no* commas\nbye, now")
case("detectable_format:json_format", {}, 'Here is the JSON:\n{"a": 1}', '{"a": 1}\nLet me know!')


@pytest.fixture(scope="module")
def verdicts():
    rows = [
        ReferenceRow(f"boundary case {i}", [iid], [kw], response)
        for i, (iid, kw, response) in enumerate(CASES)
    ]
    reference = reference_verdicts(rows)
    items = [(response, [{"type": iid, **kw}]) for iid, kw, response in CASES]
    ours = {
        "strict": [
            [r.passed for r in c.results] for c in verify_batch(items, judge_directed_text=False)
        ],
        "loose": [
            [r.passed for r in c.results]
            for c in verify_batch(items, loose=True, judge_directed_text=False)
        ],
    }
    return reference, ours


@pytest.mark.parametrize("mode", ["strict", "loose"])
def test_boundary_cases_match_the_reference(verdicts, mode):
    reference, ours = verdicts
    mismatches = [
        (CASES[i][0], CASES[i][1], CASES[i][2][:60], a, b)
        for i, (a, b) in enumerate(zip(ours[mode], reference[mode]))
        if a != b
    ]
    assert len(ours[mode]) == len(CASES) > 250
    assert mismatches == []


def _strict(iid: str, kwargs: dict, response: str) -> bool:
    return verify_batch([(response, [{"type": iid, **kwargs}])], judge_directed_text=False)[
        0
    ].passed


@pytest.mark.parametrize(
    ("n_words", "relation", "expected"),
    [
        (100, "at least", True),
        (99, "at least", False),
        (101, "at least", True),
        (100, "less than", False),
        (99, "less than", True),
        (101, "less than", False),
    ],
)
def test_word_count_boundary_is_what_the_instruction_says(n_words, relation, expected):
    assert (
        _strict(
            "length_constraints:number_words",
            {"num_words": 100, "relation": relation},
            words(n_words),
        )
        is expected
    )


def test_empty_and_whitespace_responses_follow_no_instruction():
    for response in ("", "  \n\t"):
        assert not _strict("punctuation:no_comma", {}, response)
        assert not _strict(
            "length_constraints:number_words", {"num_words": 5, "relation": "less than"}, response
        )


def test_letter_frequency_counts_the_given_character_even_when_it_is_not_a_letter():
    assert _strict(
        "keywords:letter_frequency",
        {"letter": "!", "let_frequency": 3, "let_relation": "at least"},
        "Wow! Yes! Great!",
    )
    assert not _strict(
        "keywords:letter_frequency",
        {"letter": "!", "let_frequency": 4, "let_relation": "at least"},
        "Wow! Yes! Great!",
    )


def test_loose_mode_forgives_a_chatty_first_line():
    item = [('Sure, here it is:\n"quoted"', [{"type": "startend:quotation"}])]
    assert not verify_batch(item, judge_directed_text=False)[0].passed
    assert verify_batch(item, loose=True, judge_directed_text=False)[0].passed

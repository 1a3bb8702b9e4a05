"""Constraints are data: the registry, load-time validation with row-numbered errors, and the
records."""

from __future__ import annotations

import pickle

import pytest

from rlmr.verify import (
    Constraint,
    ConstraintError,
    parse_constraint,
    parse_constraints,
    parse_rows,
    registry,
)
from rlmr.verify.creative import CREATIVE_TYPES
from rlmr.verify.ifeval import IFEVAL_TYPES


def test_all_25_ifeval_instruction_ids_are_registered_with_the_reference_ids():
    from eval_framework.tasks.ifeval.instructions_registry import INSTRUCTION_DICT

    ours = {name for name, t in registry().items() if t.family == "ifeval"}
    assert ours == set(INSTRUCTION_DICT) == set(IFEVAL_TYPES)
    assert len(ours) == 25


def test_kwarg_names_match_the_reference_build_description_signatures():
    import inspect

    from eval_framework.tasks.ifeval.instructions_registry import INSTRUCTION_DICT

    for name, cls in INSTRUCTION_DICT.items():
        params = set(inspect.signature(cls.build_description).parameters) - {"self"}
        assert set(registry()[name].kwargs) == params, name


def test_creative_guard_and_soft_types_are_registered():
    names = set(registry())
    assert set(CREATIVE_TYPES) <= names
    assert {"guard:judge_directed_text", "soft:requirement"} <= names


def test_a_valid_row_parses_into_frozen_records():
    parsed = parse_constraints(
        [
            {"type": "length_constraints:number_words", "num_words": 300, "relation": "at least"},
            {"type": "creative:must_mention", "items": ["Mira", "lantern"]},
        ],
        row=3,
    )
    assert [c.type for c in parsed] == ["length_constraints:number_words", "creative:must_mention"]
    assert parsed[1].kwargs["case_sensitive"] is False  # the default is filled in
    assert parsed[1].to_dict() == {
        "type": "creative:must_mention",
        "items": ["Mira", "lantern"],
        "case_sensitive": False,
        "min_count": 1,
    }
    with pytest.raises(TypeError):
        parsed[0].kwargs["num_words"] = 1


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"type": "length_constraints:number_wrds", "num_words": 3},
            "row 7: constraints[0]: type: unknown constraint type 'length_constraints:number_wrds' "
            "(did you mean 'length_constraints:number_words'?)",
        ),
        ({"num_words": 3}, "row 7: constraints[0]: type: required key is missing"),
        (
            {"type": "length_constraints:number_words", "num_words": 3},
            "row 7: constraints[0] (length_constraints:number_words): "
            "relation: required key is missing",
        ),
        (
            {"type": "length_constraints:number_words", "num_words": "300", "relation": "at least"},
            "row 7: constraints[0] (length_constraints:number_words): "
            "num_words: must be an integer, got '300'",
        ),
        (
            {"type": "length_constraints:number_words", "num_words": -1, "relation": "at least"},
            "row 7: constraints[0] (length_constraints:number_words): "
            "num_words: must be >= 0, got -1",
        ),
        (
            {"type": "length_constraints:number_words", "num_words": 3, "relation": "at most"},
            "row 7: constraints[0] (length_constraints:number_words): "
            "relation: must be one of 'less than', 'at least', "
            "got 'at most'",
        ),
        (
            {
                "type": "length_constraints:number_words",
                "num_words": 3,
                "relation": "at least",
                "words": 2,
            },
            "row 7: constraints[0] (length_constraints:number_words): "
            "words: unknown key (allowed: num_words, relation)",
        ),
        (
            {
                "type": "keywords:letter_frequency",
                "letter": "ab",
                "let_frequency": 2,
                "let_relation": "at least",
            },
            "row 7: constraints[0] (keywords:letter_frequency): "
            "letter: must be exactly one non-space character, got 'ab'",
        ),
        (
            {
                "type": "length_constraints:nth_paragraph_first_word",
                "num_paragraphs": 2,
                "nth_paragraph": 3,
                "first_word": "so",
            },
            "row 7: constraints[0] (length_constraints:nth_paragraph_first_word): "
            "nth_paragraph: must lie in "
            "[1, num_paragraphs=2], got 3",
        ),
        (
            {"type": "keywords:existence", "keywords": ["cat (unclosed"]},
            "row 7: constraints[0] (keywords:existence): "
            "keywords: is not a valid regular expression",
        ),
        (
            {"type": "language:response_language", "language": "klingon"},
            "row 7: constraints[0] (language:response_language): language: must be a language code",
        ),
        (
            {"type": "creative:word_count"},
            "row 7: constraints[0] (creative:word_count): min: give min, max or both",
        ),
        (
            {"type": "creative:word_count", "min": 10, "max": 5},
            "row 7: constraints[0] (creative:word_count): max: must be >= min (10), got 5",
        ),
        (
            {"type": "creative:dialogue", "present": "yes"},
            "row 7: constraints[0] (creative:dialogue): present: must be true or false, got 'yes'",
        ),
        (
            {"type": "creative:narration", "person": "fourth"},
            "row 7: constraints[0] (creative:narration): "
            "person: must be one of 'first', 'second', 'third'",
        ),
        (
            {"type": "soft:requirement", "requirement": "  "},
            "row 7: constraints[0] (soft:requirement): requirement: must not be empty",
        ),
        (
            "keywords:existence",
            "row 7: constraints[0]: a constraint must be a mapping with a 'type'",
        ),
    ],
)
def test_bad_constraints_are_rejected_naming_row_position_type_and_key(raw, message):
    with pytest.raises(ConstraintError) as err:
        parse_constraints([raw], row=7)
    assert str(err.value).startswith(message)


def test_none_valued_keys_count_as_absent():
    """Some IFEval exports carry every kwarg of every type, null where unused."""
    c = parse_constraint({"type": "punctuation:no_comma", "num_words": None, "relation": None})
    assert c.type == "punctuation:no_comma" and dict(c.kwargs) == {}


def test_constraints_must_be_a_list():
    with pytest.raises(ConstraintError, match=r"row 2: constraints: must be a list"):
        parse_constraints({"type": "punctuation:no_comma"}, row=2)
    assert parse_constraints(None) == ()


def test_parse_rows_reports_every_bad_row_at_once():
    rows = [
        {"constraints": [{"type": "punctuation:no_comma"}]},
        {"constraints": [{"type": "nope"}]},
        {"constraints": [{"type": "creative:word_count", "max": -3}]},
    ]
    with pytest.raises(ConstraintError) as err:
        parse_rows(rows)
    text = str(err.value)
    assert "2 row(s) with invalid constraints" in text
    assert "row 2: constraints[0]: type: unknown constraint type 'nope'" in text
    assert "row 3: constraints[0] (creative:word_count): max: must be >= 0, got -3" in text


def test_constraints_pickle_through_validation():
    c = parse_constraint(
        {"type": "keywords:forbidden_words", "forbidden_words": ["dark", "stormy"]}
    )
    again = pickle.loads(pickle.dumps(c))
    assert (
        isinstance(again, Constraint)
        and again == c
        and again.args["patterns"][0].pattern == r"\bdark\b"
    )


def test_non_string_type_is_a_named_error():
    from rlmr.verify.constraints import ConstraintError, parse_constraints

    with pytest.raises(ConstraintError, match=r"row 4: .*type: must be a string, got list"):
        parse_constraints([{"type": ["creative:word_count"]}], row=4)

"""`rlmr.verify`'s batch API: order, options, groups, errors, and the driver's Verdicts record."""

from __future__ import annotations

import pickle

import pytest

from rlmr.core.records import ConstraintOutcome
from rlmr.verify import (
    ConstraintError,
    GroupCheck,
    Verdict,
    VerifyGroup,
    parse_constraints,
    verify_batch,
    verify_groups,
    verify_response,
)
from rlmr.verify.api import group_verdicts

NO_COMMA = {"type": "punctuation:no_comma"}
SHORT = {"type": "creative:word_count", "max": 5}
WINTER = {"type": "soft:requirement", "requirement": "It is winter."}


def test_one_verdict_per_constraint_in_order_with_the_guard_last():
    check = verify_response("Short, and sweet.", [NO_COMMA, SHORT])
    assert [(r.type, r.verdict, r.index) for r in check.results] == [
        ("punctuation:no_comma", Verdict.FAIL, 0),
        ("creative:word_count", Verdict.PASS, 1),
        ("guard:judge_directed_text", Verdict.PASS, None),
    ]
    assert not check.passed and check.failed and check.fraction_passed == 2 / 3


def test_no_constraints_still_gets_the_guard():
    assert verify_response("Fine.", []).passed
    assert verify_response("Fine.", [], judge_directed_text=False).fraction_passed == 1.0


def test_loose_applies_to_ifeval_types_only():
    text = "Sure, here you go:\nno commas in this line"
    strict, loose = (
        verify_response(
            text,
            [NO_COMMA, {"type": "creative:word_count", "min": 8}],
            loose=flag,
            judge_directed_text=False,
        )
        for flag in (False, True)
    )
    assert [r.passed for r in strict.results] == [False, True]
    assert [r.passed for r in loose.results] == [True, True]


def test_bad_constraints_name_the_item():
    with pytest.raises(
        ConstraintError,
        match=r"item 1: constraints\[0\] \(creative:word_count\): max: must be >= 0",
    ):
        verify_batch([("a", [NO_COMMA]), ("b", [{"type": "creative:word_count", "max": -1}])])
    with pytest.raises(TypeError, match="item 0: expected a \\(response, constraints\\) pair"):
        verify_batch(["just a string"])
    with pytest.raises(TypeError, match="response must be a str"):
        verify_batch([(None, [NO_COMMA])])


def test_parsed_constraints_are_reused_without_revalidation():
    parsed = parse_constraints([NO_COMMA, SHORT])
    assert verify_batch([("a b", parsed)])[0].passed


def test_groups_as_records_or_as_pairs():
    groups = [
        VerifyGroup([NO_COMMA], ["no comma here", "a, b", ""]),
        [("one two", [SHORT]), ("one two three four five six", [SHORT])],
    ]
    checks = verify_groups(groups)
    assert all(isinstance(c, GroupCheck) for c in checks)
    assert checks[0].passed == (True, False, False)
    assert checks[1].passed == (True, False)
    assert checks[0].fraction_passed == 1 / 3
    assert pickle.loads(pickle.dumps(checks)) == checks


def test_group_verdicts_leave_unverifiable_constraints_out_of_the_reward():
    check = verify_groups([VerifyGroup([NO_COMMA, WINTER], ["no commas", "commas, here"])])[0]
    verdicts = group_verdicts(check)
    assert verdicts.passed == (True, False)
    assert verdicts.passed_fraction == (
        1.0,
        0.5,
    )  # no_comma and the guard checked; the soft one left out
    first = verdicts.details[0]
    assert [o.type for o in first] == [
        "punctuation:no_comma",
        "soft:requirement",
        "guard:judge_directed_text",
    ]
    assert first[1].passed is None and "no text engine" in first[1].reason
    assert first[2].index is None  # the built-in guard is not in the prompt's list
    assert verdicts.details[1][0] == ConstraintOutcome(
        type="punctuation:no_comma", index=0, passed=False
    )
    assert verdicts.failed_types(1) == ["punctuation:no_comma"] and verdicts.failed_types(0) == []


def test_very_long_and_unicode_responses():
    long_text = ("Der Fluss floss ruhig. " * 5000) + "\u2603 " * 100
    check = verify_response(
        long_text,
        [
            {"type": "language:response_language", "language": "de"},
            {"type": "creative:word_count", "min": 20000},
        ],
    )
    assert check.passed, check.results


FRENCH = "Le renard brun rapide saute par-dessus le chien paresseux pendant que le fermier regarde."
ENGLISH = "The quick brown fox jumps over the lazy dog while the farmer watches from the porch."


def test_languages_of_a_batch_are_identified_in_one_call_with_unchanged_verdicts(monkeypatch):
    """Rules that read a response's language wait until every such response is known, then
    run again; the verdicts are those of identifying one response at a time."""
    from rlmr.verify import langid
    from rlmr.verify.text import TextStats
    from rlmr.verify.treebank import TreebankWordTokenizer  # noqa: F401 (import before patching)

    in_french = {"type": "language:response_language", "language": "fr"}
    lowercase = {"type": "change_case:english_lowercase"}
    capital = {"type": "change_case:english_capital"}
    items = [
        (FRENCH, [in_french, NO_COMMA]),
        (ENGLISH, [in_french]),
        (ENGLISH.lower(), [lowercase, in_french]),
        (FRENCH.upper(), [capital]),
        ("*\n" + FRENCH.lower() + "\n*", [lowercase]),  # loose: the variants' languages too
        ("12345 !!!", [in_french]),  # no usable characters: langdetect raises, counts as followed
    ]

    def expected(loose):
        out = []
        for response, constraints in items:
            stats = TextStats(response)
            assert stats.language is not None or response.startswith("1")  # identified at once
            check = verify_response(response, constraints, loose=loose)
            out.append([r.verdict for r in check.results])
        return out

    one_at_a_time = {loose: expected(loose) for loose in (False, True)}
    identifier = langid.shared_identifier()
    calls = []
    real = identifier.detect_many
    monkeypatch.setattr(identifier, "detect_many", lambda texts: calls.append(texts) or real(texts))
    monkeypatch.setattr(identifier, "detect", lambda text: pytest.fail("identified one by one"))
    for loose in (False, True):
        calls.clear()
        got = [[r.verdict for r in c.results] for c in verify_batch(items, loose=loose)]
        assert got == one_at_a_time[loose]
        assert len(calls[0]) == 6  # the first round holds every response that needs a language
    assert one_at_a_time[False] == [
        [Verdict.PASS, Verdict.PASS, Verdict.PASS],
        [Verdict.FAIL, Verdict.PASS],
        [Verdict.PASS, Verdict.FAIL, Verdict.PASS],
        [Verdict.FAIL, Verdict.PASS],
        [Verdict.FAIL, Verdict.PASS],
        [Verdict.PASS, Verdict.PASS],
    ]
    assert one_at_a_time[True][4] == [Verdict.FAIL, Verdict.PASS]


def test_no_language_rule_loads_no_language_profiles(monkeypatch):
    from rlmr.verify import langid

    monkeypatch.setattr(langid, "shared_identifier", lambda: pytest.fail("profiles loaded"))
    assert verify_batch([("Short, and sweet.", [NO_COMMA])])[0].results[0].verdict == Verdict.FAIL


def test_a_rule_that_never_stops_waiting_for_a_language_is_an_error():
    from rlmr.verify.text import TextStats, run_with_batched_languages

    def job():  # a new deferred text on every run: no round can satisfy it
        return TextStats("Bonjour tout le monde.", defer_language=True).language

    with pytest.raises(RuntimeError, match="still waiting for a language after 16 rounds"):
        run_with_batched_languages([job])

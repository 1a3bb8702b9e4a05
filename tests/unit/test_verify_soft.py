"""Soft constraints through the TextEngine interface (FakeEngine), and their reporting without an
engine."""

from __future__ import annotations

import math

import pytest

from rlmr.verify import SoftConstraintChecker, Verdict, verify_batch
from tests.fakes import FakeEngine, tiny_cache  # noqa: F401 (fixture)

WINTER = {"type": "soft:requirement", "requirement": "The story is set in winter."}


def weather_engine(p_yes_if_snow: float = 0.9):
    """Says yes when the writing mentions snow; records every call."""

    def next_token(prompt: str, candidates):
        writing = prompt.split("<<<", 1)[1]
        p_yes = p_yes_if_snow if "snow" in writing else 0.1
        return [p_yes * 0.5, (1 - p_yes) * 0.5]  # the rest of the mass elsewhere in the vocabulary

    return FakeEngine(next_token=next_token)


def test_default_yes_no_must_be_single_tokens_and_the_error_says_what_they_encode_to():
    with pytest.raises(ValueError, match=r"single, distinct tokens.*'Yes' -> \[\d+, \d+, \d+\]"):
        SoftConstraintChecker(FakeEngine())  # the fake tokenizer has one token per character


def test_yes_and_no_come_together():
    with pytest.raises(ValueError, match="give both"):
        SoftConstraintChecker(FakeEngine(), yes="Y")


def test_verdicts_follow_the_renormalised_yes_probability_in_one_batched_call():
    engine = weather_engine()
    checker = SoftConstraintChecker(engine, yes="Y", no="N")
    checks = verify_batch(
        [
            ("The snow fell all night.", [WINTER]),
            ("The sun beat down on the beach.", [WINTER]),
            ("Snow? No: snow everywhere.", [WINTER, {**WINTER, "threshold": 0.95}]),
        ],
        soft_checker=checker,
        judge_directed_text=False,
    )
    assert [[r.verdict for r in c.results] for c in checks] == [
        [Verdict.PASS],
        [Verdict.FAIL],
        [Verdict.PASS, Verdict.FAIL],
    ]
    assert checks[0].results[0].detail == "p(yes)=0.900"
    assert [c[0] for c in engine.calls] == ["next_token_logprobs"] and engine.calls[0][1] == 4


def test_the_question_goes_through_the_chat_template_with_requirement_and_response():
    seen = []
    engine = FakeEngine(next_token=lambda prompt, cands: seen.append(prompt) or [0.6, 0.4])
    SoftConstraintChecker(engine, yes="Y", no="N").check([("Snowy text.", _parsed(WINTER))])
    assert seen[0].startswith("<user>") and seen[0].endswith("</user><assistant>")
    assert (
        "Requirement: The story is set in winter." in seen[0] and "<<<\nSnowy text.\n>>>" in seen[0]
    )
    assert "Answer with Y or N only." in seen[0]
    plain = []
    engine = FakeEngine(next_token=lambda prompt, cands: plain.append(prompt) or [0.6, 0.4])
    SoftConstraintChecker(engine, yes="Y", no="N", chat_template=False).check(
        [("x", _parsed(WINTER))]
    )
    assert plain[0].endswith("\nAnswer:") and not plain[0].startswith("<user>")


def test_long_responses_are_cut_in_the_middle():
    checker = SoftConstraintChecker(FakeEngine(), yes="Y", no="N", max_response_chars=100)
    prompt = checker.prompt("a" * 80 + "b" * 80, "req")
    assert "a" * 50 + "\n[...]\n" + "b" * 50 in prompt and "a" * 51 not in prompt


def test_without_an_engine_soft_constraints_are_unverifiable_never_passed():
    check = verify_batch(
        [("The snow fell.", [WINTER, {"type": "punctuation:no_comma"}])], judge_directed_text=False
    )[0]
    soft = check.results[0]
    assert soft.verdict is Verdict.UNVERIFIABLE and "no text engine" in soft.detail
    assert not soft.passed and not check.passed and not check.failed
    assert check.fraction_passed == 0.5 and check.fraction_passed_checked == 1.0


def test_no_probability_on_either_answer_is_unverifiable():
    engine = FakeEngine(next_token=lambda prompt, cands: [0.0, 0.0])
    result = verify_batch(
        [("text", [WINTER])],
        soft_checker=SoftConstraintChecker(engine, yes="Y", no="N"),
        judge_directed_text=False,
    )[0].results[0]
    assert result.verdict is Verdict.UNVERIFIABLE


def test_one_sided_mass_is_decisive():
    for weights, verdict in (([0.3, 0.0], Verdict.PASS), ([0.0, 0.3], Verdict.FAIL)):
        engine = FakeEngine(next_token=lambda prompt, cands, w=weights: w)
        result = verify_batch(
            [("text", [WINTER])],
            soft_checker=SoftConstraintChecker(engine, yes="Y", no="N"),
            judge_directed_text=False,
        )[0].results[0]
        assert result.verdict is verdict and not math.isnan(float(result.detail.split("=")[1]))


def test_empty_responses_fail_without_asking_the_engine():
    engine = weather_engine()
    result = verify_batch(
        [("   ", [WINTER])],
        soft_checker=SoftConstraintChecker(engine, yes="Y", no="N"),
        judge_directed_text=False,
    )[0].results[0]
    assert result.verdict is Verdict.FAIL and engine.calls == []


def _parsed(raw):
    from rlmr.verify import parse_constraint

    return parse_constraint(raw)


@pytest.mark.slow
def test_with_the_hf_transformers_engine(tiny_cache):  # noqa: F811
    """The same checker on the real HF engine (a tiny random Llama): one batched call, verdicts from
    its log-probs."""
    from rlmr.config import TinyModel
    from rlmr.engine.hf import HFEngine

    engine = HFEngine.from_source(
        TinyModel(), dtype="float32", device="cpu", batch_size=2, max_model_len=1024
    )
    checker = SoftConstraintChecker(engine, yes="Y", no="N", chat_template=False)
    response = "Snow fell all night."
    row = engine.next_token_logprobs(
        [checker.prompt(response, WINTER["requirement"])], [checker.yes_id, checker.no_id]
    )[0]
    p_yes = 1 / (1 + math.exp(row[1] - row[0]))  # P(yes) / (P(yes) + P(no))
    assert 0.02 < p_yes < 0.98  # the random model is unsure: thresholds on both sides of it matter
    below, above = round(p_yes - 0.01, 4), round(p_yes + 0.01, 4)
    items = [
        (response, _parsed({**WINTER, "threshold": below})),
        (response, _parsed({**WINTER, "threshold": above})),
    ]
    results = checker.check(items)
    assert [r.verdict for r in results] == [Verdict.PASS, Verdict.FAIL]
    assert results[0].detail == f"p(yes)={p_yes:.3f}"

"""Group scoring: the strategies as pure functions, and `GenerativeJudge.score_groups` on a fake
engine."""

from __future__ import annotations

import itertools
import random

import pytest

from rlmr.judge import GenerativeJudge, JudgeGroup, JudgeSettings, JudgeSetupError, PairQuery
from rlmr.judge.strategies import (
    REFERENCE,
    plan_pairs,
    pointwise_scores,
    response_entropies,
    writing_scores,
)
from tests.fakes import FakeEngine, TwoTokensPerCharTokenizer, fenced_responses, preferring


def quality(text: str) -> float:
    """The fake judge's taste: more exclamation marks is better writing."""
    return 1.0 + text.count("!")


# --------------------------------------------------------------------------- pure strategies


def test_plans():
    assert plan_pairs("pivot", 4) == [(1, 0), (2, 0), (3, 0)]
    assert plan_pairs("pivot", 3, pivot=2) == [(0, 2), (1, 2)]
    assert plan_pairs("round_robin", 4) == list(itertools.combinations(range(4), 2))
    assert plan_pairs("reference", 3) == [(0, REFERENCE), (1, REFERENCE), (2, REFERENCE)]
    assert plan_pairs("pointwise", 3) == []
    assert plan_pairs("pivot", 1) == [] and plan_pairs("round_robin", 1) == []
    with pytest.raises(ValueError, match="group_strategy"):
        plan_pairs("elo", 3)


def test_pivot_scores():
    w = writing_scores("pivot", 3, {(1, 0): 0.9, (2, 0): 0.2})
    assert w == [0.5, 0.9, 0.2]


def test_round_robin_scores_are_mean_win_probabilities():
    p = {(0, 1): 0.8, (0, 2): 0.6, (1, 2): 0.3}
    w = writing_scores("round_robin", 3, p)
    assert w == pytest.approx([(0.8 + 0.6) / 2, (0.2 + 0.3) / 2, (0.4 + 0.7) / 2])
    assert sum(w) == pytest.approx(1.5)  # n/2: every comparison hands out one unit of win


def test_reference_and_pointwise_scores():
    assert writing_scores("reference", 2, {(0, REFERENCE): 0.7, (1, REFERENCE): 0.1}) == [0.7, 0.1]
    assert pointwise_scores([1.0, 10.0, 5.5]) == pytest.approx([0.0, 1.0, 0.5])


def test_missing_judgments_are_an_error():
    with pytest.raises(ValueError, match="missing"):
        writing_scores("round_robin", 3, {(0, 1): 0.5})


def test_response_entropies_average_over_participation():
    assert response_entropies(3, [(1, 0), (2, 0)], [0.2, 0.6]) == pytest.approx([0.4, 0.2, 0.6])


@pytest.mark.parametrize("strategy", ["pivot", "round_robin", "reference"])
def test_scores_stay_in_unit_interval_and_keep_the_true_order(strategy):
    rng = random.Random(0)
    for _ in range(50):
        n = rng.randint(2, 8)
        strength = [rng.random() for _ in range(n)]
        s = {REFERENCE: 0.5, **dict(enumerate(strength))}
        p = {(a, b): s[a] / (s[a] + s[b] + 1e-12) for a, b in plan_pairs(strategy, n)}
        w = writing_scores(strategy, n, p)
        assert all(0.0 <= x <= 1.0 for x in w)
        if strategy != "pivot":  # the pivot itself sits at 0.5 whatever its strength
            order = sorted(range(n), key=lambda i: strength[i])
            assert all(w[a] <= w[b] + 1e-12 for a, b in zip(order, order[1:]))


# ---------------------------------------------------------------------- the judge on a fake engine


def judge(strategy="pivot", reasoning=False, swap=True, next_token=None, **kw):
    engine = FakeEngine(
        next_token=next_token or preferring(quality),
        respond=lambda prompt, i: "A is livelier. Verdict: A",
    )
    return engine, GenerativeJudge(
        engine,
        JudgeSettings(
            strategy=strategy, reasoning=reasoning, swap=swap, max_analysis_tokens=32, **kw
        ),
    )


GROUPS = [
    JudgeGroup("Write about the sea.", ("calm", "waves!", "storm!!!"), reference="a reference!"),
    JudgeGroup("Write about a fox.", ("fox!!", "fox"), reference="ref"),
]


@pytest.mark.parametrize("strategy", ["pivot", "round_robin", "reference", "pointwise"])
def test_every_strategy_scores_groups_in_one_engine_call(strategy):
    engine, j = judge(strategy)
    out = j.score_groups(GROUPS)
    assert [len(s.writing) for s in out] == [3, 2]
    assert all(0.0 <= w <= 1.0 for s in out for w in s.writing)
    assert all(0.0 <= h <= 1.0 for s in out for h in s.entropies)
    # Better writing (more "!") gets a higher score in every strategy.
    assert out[0].writing[2] > out[0].writing[1] > out[0].writing[0]
    assert out[1].writing[0] > out[1].writing[1]
    reads = [c for c in engine.calls if c[0] == "next_token_logprobs"]
    assert len(reads) == (2 if strategy == "pointwise" else 1)  # pointwise: one more call for "10"
    assert not [c for c in engine.calls if c[0] == "generate"]  # no reasoning, no analysis


def test_pivot_counts_and_values():
    engine, j = judge("pivot")
    out = j.score_groups(GROUPS)
    assert out[0].writing[0] == 0.5  # the pivot
    assert len(out[0].comparisons) == 2 and len(out[0].entropies) == 2
    assert engine.calls[-1] == (
        "next_token_logprobs",
        2 * (2 + 1),
    )  # (n-1) comparisons x 2 orders, both groups


def test_round_robin_sends_all_pairs_in_both_orders():
    engine, j = judge("round_robin")
    j.score_groups(GROUPS)
    assert engine.calls[-1] == ("next_token_logprobs", 2 * (3 + 1))


def test_reference_strategy_needs_a_reference():
    _, j = judge("reference")
    with pytest.raises(ValueError, match="reference"):
        j.score_groups([JudgeGroup("p", ("a", "b"))])


def test_swap_cancels_a_judge_that_always_picks_the_first_response():
    first_always = lambda prompt, cands: [0.8, 0.1]  # noqa: E731
    _, j = judge("pivot", next_token=first_always)
    out = j.score_groups([JudgeGroup("p", ("a", "b", "c"))])
    assert out[0].writing == pytest.approx((0.5, 0.5, 0.5))
    assert out[0].position_consistency == 0.0
    assert all(h == pytest.approx(1.0) for h in out[0].entropies)
    _, j = judge("pivot", swap=False, next_token=first_always)
    out = j.score_groups([JudgeGroup("p", ("a", "b", "c"))])
    assert out[0].writing[1] == pytest.approx(
        0.8 / 0.9
    )  # without swap the bias goes straight into w
    assert out[0].position_consistency is None


def test_consistent_judge_reports_full_position_consistency():
    _, j = judge("round_robin")
    out = j.score_groups(GROUPS)
    assert out[0].position_consistency == 1.0
    assert out[0].verdict_mass == pytest.approx(0.9)


def test_reasoning_samples_all_analyses_in_one_generate_call_and_reads_after_them():
    seen = []

    def next_token(prompt, cands):
        seen.append(prompt)
        return preferring(quality)(prompt, cands)

    engine, j = judge("pivot", reasoning=True, next_token=next_token)
    out = j.score_groups(GROUPS)
    gens = [c for c in engine.calls if c[0] == "generate"]
    assert gens == [("generate", 6)]
    # The analysis stops before the model's own "Verdict" text; the judge appends the cue itself.
    assert all(p.endswith("Analysis:\nA is livelier.\nVerdict: ") for p in seen)
    assert out[0].comparisons[0].analyses == ("A is livelier. ", "A is livelier. ")


def test_empty_responses_lose_without_asking_the_judge():
    engine, j = judge("pivot")
    out = j.score_groups([JudgeGroup("p", ("pivot!", "", "   ", "fine!!"))])
    w = out[0].writing
    assert w[1] == 0.0 and w[2] == 0.0 and w[3] > 0.5
    assert out[0].empty == 2
    assert engine.calls[-1] == ("next_token_logprobs", 2)  # only (3, pivot), in both orders
    _, j = judge("pivot")
    out = j.score_groups([JudgeGroup("p", ("", "", "x"))])
    assert out[0].writing[:2] == (0.5, 0.5)  # an empty pivot ties with an empty response


def test_empty_responses_rate_lowest_pointwise():
    _, j = judge("pointwise")
    out = j.score_groups([JudgeGroup("p", ("", "good!!!!!"))])
    assert out[0].writing[0] == 0.0 and out[0].writing[1] > 0.3


def test_pointwise_reads_ten_through_a_second_step_on_digit_tokenizers():
    # quality 10 -> the fake puts its mass on the first digit "1"; then "0" follows with probability
    # 0.9 * ...
    def next_token(prompt, cands):
        if len(cands) == 1:  # P("0" | "...Score: 1")
            return [0.75]
        return preferring(lambda t: 10.0)(prompt, cands)

    _, j = judge("pointwise", next_token=next_token)
    out = j.score_groups([JudgeGroup("p", ("perfect",))])
    r = out[0].ratings[0]
    assert r.distribution[9] == pytest.approx(0.75) and r.distribution[0] == pytest.approx(0.25)
    assert r.score == pytest.approx(0.25 * 1 + 0.75 * 10)


def test_long_responses_are_truncated_and_counted_per_group():
    _, j = judge("pivot", max_judge_len=1400)
    out = j.score_groups([JudgeGroup("p", ("x" * 3000, "short", "y" * 3000))])
    assert out[0].truncated == 2
    assert j.stats["truncated"] == 2


def test_judge_start_up_fails_for_a_tokenizer_without_single_token_labels():
    engine = FakeEngine()
    engine.tokenizer = TwoTokensPerCharTokenizer()
    with pytest.raises(JudgeSetupError, match="single-token"):
        GenerativeJudge(engine, JudgeSettings())


def test_compare_both_orders_and_fenced_texts():
    prompts = []

    def next_token(prompt, cands):
        prompts.append(prompt)
        return preferring(quality)(prompt, cands)

    _, j = judge("pivot", next_token=next_token)
    (res,) = j.compare([PairQuery("p", "good!!", "meh", context="ctx")])
    assert res.p > 0.5 and res.consistent
    assert [t for _, t in fenced_responses(prompts[0])] == ["good!!", "meh"]
    assert [t for _, t in fenced_responses(prompts[1])] == ["meh", "good!!"]
    assert res.p == pytest.approx(0.5 * (3 / 4 + (1 - 1 / 4)))

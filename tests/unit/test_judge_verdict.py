"""Verdict reading: label choice, P(X)/(P(X)+P(Y)), scores, swap combination, entropy (no model)."""

from __future__ import annotations

import math

import pytest

from rlmr.judge.verdict import (
    JudgeSetupError,
    binary_entropy,
    choose_score_tokens,
    choose_verdict_labels,
    combine_orders,
    expected_score,
    normalised_entropy,
    orders_consistent,
    score_distribution,
    split_ten,
    verdict_probability,
)
from tests.fakes import FakeTokenizer, TwoTokensPerCharTokenizer


def test_verdict_probability_renormalises_over_the_two_labels():
    p, mass = verdict_probability(math.log(0.3), math.log(0.1))
    assert p == pytest.approx(0.75)
    assert mass == pytest.approx(0.4)


def test_verdict_probability_is_stable_for_extreme_logprobs():
    p, _ = verdict_probability(-1000.0, -1.0)
    assert 0.0 <= p < 1e-300 or p == 0.0
    p, _ = verdict_probability(-1.0, -1000.0)
    assert p == pytest.approx(1.0)
    p, mass = verdict_probability(-math.inf, -math.inf)
    assert (p, mass) == (0.5, 0.0)  # no mass on either label: uninformative, not a crash


def test_verdict_probability_rejects_nan():
    with pytest.raises(ValueError, match="NaN"):
        verdict_probability(float("nan"), -1.0)


def test_labels_are_single_tokens_after_the_cue():
    tok = FakeTokenizer()  # one token per character: " A" is two tokens, so the cue takes the space
    labels = choose_verdict_labels(tok)
    assert (labels.first, labels.second) == ("A", "B")
    assert labels.cue == "Verdict: "
    assert tok.encode(labels.cue + "A") == tok.encode(labels.cue) + [labels.first_id]


def test_labels_fall_back_to_the_next_pair_when_a_pair_is_not_single_tokens():
    class NoLetters(FakeTokenizer):
        def encode(self, text, add_special_tokens=False):
            out = []
            for ch in text:
                out += [ord(ch) + 3, ord(ch) + 3] if ch in "AB" else [ord(ch) + 3]
            return out

    labels = choose_verdict_labels(NoLetters())
    assert (labels.first, labels.second) == ("1", "2")


def test_tokenizer_without_single_token_labels_fails_at_start_up_with_a_clear_message():
    with pytest.raises(JudgeSetupError, match="no single-token verdict labels"):
        choose_verdict_labels(TwoTokensPerCharTokenizer())
    with pytest.raises(JudgeSetupError, match="pointwise"):
        choose_score_tokens(TwoTokensPerCharTokenizer())


def test_score_tokens_split_ten_when_it_is_two_tokens():
    st = choose_score_tokens(FakeTokenizer())
    assert len(st.ids) == 9 and st.ten_id is None and st.zero_id == FakeTokenizer().encode("0")[0]


def test_score_expectation_and_ten_split():
    dist, mass = score_distribution([math.log(0.5)] + [-math.inf] * 8 + [math.log(0.5)])
    assert mass == pytest.approx(1.0)
    assert expected_score(dist) == pytest.approx(5.5)
    nine = [0.5] + [0.0] * 7 + [0.5]  # P("1") = 0.5, P("9") = 0.5
    ten = split_ten(nine, 0.8)  # after "1", "0" follows with probability 0.8
    assert (
        ten[0] == pytest.approx(0.1)
        and ten[9] == pytest.approx(0.4)
        and sum(ten) == pytest.approx(1.0)
    )


def test_swap_combination_cancels_a_pure_position_bias():
    # A judge that always prefers whatever is shown first: no information about a vs b.
    assert combine_orders(0.8, 0.8) == pytest.approx(0.5)
    # A judge that prefers a in both orders.
    assert combine_orders(0.9, 0.2) == pytest.approx(0.85)
    assert combine_orders(1.0, 0.0) == 1.0


def test_position_consistency():
    assert orders_consistent(0.9, 0.2)  # a wins both times
    assert orders_consistent(0.3, 0.6)  # b wins both times
    assert not orders_consistent(0.8, 0.8)  # the first shown wins both times
    assert orders_consistent(0.5, 0.5)  # a tie both times is consistent


def test_entropies():
    assert binary_entropy(0.5) == pytest.approx(1.0)
    assert binary_entropy(0.0) == binary_entropy(1.0) == 0.0
    assert binary_entropy(0.9) == pytest.approx(binary_entropy(0.1))
    assert normalised_entropy([0.1] * 10) == pytest.approx(1.0)
    assert normalised_entropy([1.0] + [0.0] * 9) == 0.0

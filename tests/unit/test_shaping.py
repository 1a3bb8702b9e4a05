"""RLCS entropy-based reward shaping: orderings, limits, bad input."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rlmr.core.shaping import binary_entropy, entropy_shaped_rewards, vote_entropy
from tests.properties import examples

prob = st.floats(0.0, 1.0, allow_nan=False)


def _shaped(correct: bool, p: float, floor: float) -> float:
    return entropy_shaped_rewards(
        torch.tensor([correct]), torch.tensor([p], dtype=torch.float64), floor
    ).item()


def test_binary_entropy_limits():
    h = binary_entropy(torch.tensor([0.0, 0.5, 1.0, 0.25], dtype=torch.float64))
    assert h[0] == 0 and h[2] == 0 and h[1] == 1
    assert h[3].item() == pytest.approx(-(0.25 * math.log2(0.25) + 0.75 * math.log2(0.75)))


@settings(max_examples=examples(2000), deadline=None)
@given(st.floats(0.01, 0.99), st.floats(0.5, 0.999), st.floats(0.5, 0.999))
def test_orderings(floor, p_a, p_b):
    # Confidence = distance of p from 0.5: the more confident of the two judgments.
    uncertain, confident = sorted([p_a, p_b], key=lambda p: abs(p - 0.5))
    h_u, h_c = (
        binary_entropy(torch.tensor([p], dtype=torch.float64)).item()
        for p in (uncertain, confident)
    )
    uc = _shaped(True, uncertain, floor)
    cc = _shaped(True, confident, floor)
    uw = _shaped(False, uncertain, floor)
    cw = _shaped(False, confident, floor)
    # Rounding is monotone, so the order always holds with ties allowed; the signs are always
    # strict.
    assert uc >= cc > 0 > uw >= cw
    # Strict wherever the entropies differ by more than float64 can resolve after scaling by
    # (1 - floor): shaped rewards lie in [-1, 1], where one ulp is at most 2.2e-16.
    if (1 - floor) * (h_u - h_c) > 1e-15:
        assert uc > cc and uw > cw


def test_orderings_at_float_resolution_are_ties_not_inversions():
    # The case that once made a strict-only test flaky: entropies 1 ulp apart give equal rewards.
    uncertain, confident, floor = 0.9989999999999999, 0.999, 0.96875
    assert _shaped(True, uncertain, floor) >= _shaped(True, confident, floor)
    assert _shaped(False, uncertain, floor) >= _shaped(False, confident, floor)


@settings(max_examples=examples(500), deadline=None)
@given(st.floats(0.0, 1.0), prob)
def test_bounds_and_symmetry(floor, p):
    for correct in (True, False):
        r = _shaped(correct, p, floor)
        assert -1.0 <= r <= 1.0
        # The entropy is the same whichever verdict side p was read from.
        assert r == pytest.approx(_shaped(correct, 1.0 - p, floor), abs=1e-12)
    assert _shaped(True, p, floor) >= floor - 1e-12
    assert _shaped(False, p, floor) <= -floor + 1e-12


def test_floor_one_turns_shaping_off():
    p = torch.tensor([0.5, 0.9, 0.99, 0.6])
    c = torch.tensor([True, True, False, False])
    assert entropy_shaped_rewards(c, p, floor=1.0).tolist() == [1.0, 1.0, -1.0, -1.0]


def test_extremes():
    assert _shaped(True, 0.5, 0.3) == pytest.approx(1.0)
    assert _shaped(True, 1.0, 0.3) == pytest.approx(0.3)
    assert _shaped(False, 1.0, 0.3) == pytest.approx(-1.0)
    assert _shaped(False, 0.5, 0.3) == pytest.approx(-0.3)


def test_missing_verdict_gets_minus_one_and_any_shape_works():
    c = torch.tensor([[True, True], [False, True]])
    p = torch.tensor([[0.5, 0.9], [0.6, 0.7]])
    valid = torch.tensor([[True, False], [True, True]])
    r = entropy_shaped_rewards(c, p, 0.5, valid=valid)
    assert r.shape == (2, 2)
    assert r[0, 1].item() == -1.0
    assert r[0, 0].item() == pytest.approx(1.0)


def test_vote_entropy():
    v = torch.tensor([[True, True, False, False], [True, True, True, True]])
    h = vote_entropy(v)
    assert h[0].tolist() == [1.0] * 4
    assert h[1].tolist() == [0.0] * 4


def test_bad_input_raises():
    with pytest.raises(ValueError, match="p_verdict: contains 1 NaN"):
        entropy_shaped_rewards(torch.tensor([True]), torch.tensor([math.nan]))
    with pytest.raises(ValueError, match="p_verdict: probabilities must lie"):
        entropy_shaped_rewards(torch.tensor([True]), torch.tensor([1.5]))
    with pytest.raises(ValueError, match="correct: expected a bool"):
        entropy_shaped_rewards(torch.tensor([1.0]), torch.tensor([0.5]))
    with pytest.raises(ValueError, match="floor"):
        entropy_shaped_rewards(torch.tensor([True]), torch.tensor([0.5]), floor=1.5)
    with pytest.raises(ValueError, match="same shape"):
        entropy_shaped_rewards(torch.tensor([True, False]), torch.tensor([0.5]))

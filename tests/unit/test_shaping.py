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


# ----------------------------------------------------------------- inputs, dtypes, exact values


def _entropy_bits(p: float) -> float:
    """Binary entropy in bits, computed independently in Python doubles."""
    return -sum(q * math.log2(q) for q in (p, 1.0 - p) if q > 0)


def test_binary_entropy_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"^p: probabilities must lie in \[0, 1\]"):
        binary_entropy(torch.tensor([1.5]))
    with pytest.raises(
        ValueError, match=r"^p: expected a real-valued tensor, got dtype torch.bool"
    ):
        binary_entropy(torch.tensor([True]))
    with pytest.raises(ValueError, match=r"^share: expected a real-valued tensor"):
        binary_entropy(torch.tensor([True]), "share")
    with pytest.raises(ValueError, match=r"^share: probabilities must lie"):
        binary_entropy([-0.1], "share")


def test_binary_entropy_never_exceeds_one_bit_near_one_half():
    # Unclamped, rounding puts these a few ulps above 1 (the true entropy is just below 1).
    p = torch.tensor(
        [0.4999999954748619, 0.50000000471924, 0.4999999996575239, 0.4999999999997126],
        dtype=torch.float64,
    )
    h = binary_entropy(p)
    assert bool((h <= 1.0).all()), h.tolist()
    assert bool((h >= 1.0 - 1e-15).all())
    # So a correct judgment with floor 0 earns at most 1.
    r = entropy_shaped_rewards(torch.ones(4, dtype=torch.bool), p, floor=0.0)
    assert bool((r <= 1.0).all()), r.tolist()


def test_binary_entropy_keeps_dtype_and_rounds_once():
    ps = [0.01, 0.1, 0.2, 0.25, 0.3, 0.6, 0.7, 0.75, 0.9, 0.99]
    h32 = binary_entropy(torch.tensor(ps, dtype=torch.float32))
    h64 = binary_entropy(torch.tensor(ps, dtype=torch.float64))
    assert h32.dtype == torch.float32 and h64.dtype == torch.float64
    # float32 results are the float64 entropy rounded to float32 once, not float32 arithmetic.
    ps32 = torch.tensor(ps, dtype=torch.float32).tolist()  # the float32 values actually passed
    assert h32.tolist() == torch.tensor([_entropy_bits(p) for p in ps32]).tolist()
    assert h64.tolist() == pytest.approx([_entropy_bits(p) for p in ps], rel=1e-15, abs=0)


def test_binary_entropy_accepts_lists():
    assert binary_entropy([0.0, 0.5, 1.0]).tolist() == [0.0, 1.0, 0.0]


def test_shaped_rewards_keep_dtype_and_match_binary_entropy():
    ps = [0.01, 0.1, 0.2, 0.25, 0.3, 0.6, 0.7, 0.75, 0.9, 0.99]
    floor = 0.3
    for correct in (True, False):
        c = torch.full((len(ps),), correct)
        r32 = entropy_shaped_rewards(c, torch.tensor(ps, dtype=torch.float32), floor)
        r64 = entropy_shaped_rewards(c, torch.tensor(ps, dtype=torch.float64), floor)
        assert r32.dtype == torch.float32 and r64.dtype == torch.float64
        # The reward formula applied to the entropy `binary_entropy` reports (itself correctly
        # rounded), evaluated in doubles and rounded to the input dtype once.
        for out in (r32, r64):
            h = binary_entropy(torch.tensor(ps, dtype=out.dtype)).tolist()
            exact = [
                floor + (1 - floor) * x if correct else -(floor + (1 - floor) * (1 - x)) for x in h
            ]
            if out.dtype == torch.float32:
                assert out.tolist() == torch.tensor(exact, dtype=torch.float32).tolist()
            else:
                assert out.tolist() == pytest.approx(exact, rel=1e-15, abs=0)


def test_shaped_rewards_accept_lists():
    r = entropy_shaped_rewards([True, False, True], [0.5, 1.0, 0.9], 0.5, valid=[True, True, False])
    assert r.dtype == torch.get_default_dtype()
    assert r.tolist() == pytest.approx([1.0, -1.0, -1.0])
    r = entropy_shaped_rewards([[True, False]], [[0.25, 0.25]], 0.0, valid=[[True, True]])
    h = _entropy_bits(0.25)
    assert r[0].tolist() == pytest.approx([h, -(1 - h)], rel=1e-6)


def test_shaped_rewards_errors_name_the_argument():
    yes = torch.tensor([True, True])
    p = torch.tensor([0.5, 0.9])
    with pytest.raises(ValueError, match=r"^p_verdict: expected a real-valued tensor"):
        entropy_shaped_rewards(yes, yes)
    with pytest.raises(
        ValueError, match=r"^correct and p_verdict must have the same shape, got \(2,\) and \(1,\)"
    ):
        entropy_shaped_rewards(yes, p[:1])
    with pytest.raises(
        ValueError, match=r"^valid: expected a bool tensor, got dtype torch.float32"
    ):
        entropy_shaped_rewards(yes, p, valid=torch.tensor([1.0, 1.0]))
    with pytest.raises(
        ValueError, match=r"^correct and valid must have the same shape, got \(2,\) and \(1,\)"
    ):
        entropy_shaped_rewards(yes, p, valid=torch.tensor([True]))
    with pytest.raises(ValueError, match=r"^floor: must lie in \[0, 1\], got -0.5"):
        entropy_shaped_rewards(yes, p, floor=-0.5)


def test_vote_entropy_shapes_dtypes_and_lists():
    v = [[True, False, False, False], [True, True, True, True], [False, False, False, False]]
    h = vote_entropy(v)
    assert h.dtype == torch.get_default_dtype() and h.shape == (3, 4)
    assert h.tolist() == torch.tensor([[_entropy_bits(0.25)] * 4, [0.0] * 4, [0.0] * 4]).tolist()


@pytest.mark.parametrize(
    "verdicts, got",
    [
        (torch.tensor([True, False]), r"torch.bool \(2,\)"),
        (torch.tensor([[1, 0], [0, 0]]), r"torch.int64 \(2, 2\)"),
        (torch.ones(1, 2, 2, dtype=torch.bool), r"torch.bool \(1, 2, 2\)"),
    ],
)
def test_vote_entropy_rejects_non_bool_or_non_2d(verdicts, got):
    with pytest.raises(
        ValueError, match=r"^verdicts: expected a bool tensor shaped \[groups, k\], got " + got
    ):
        vote_entropy(verdicts)

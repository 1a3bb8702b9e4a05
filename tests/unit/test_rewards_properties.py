"""Property tests of RLMR's dynamic reward mixing through every advantage estimator.

Thousands of random groups (n = 2..64, ties, score scales from 1e-8 to 1e8,
float32 and float64) check the four guarantees of `docs/ALGORITHMS.md` section 2.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from rlmr.core.algo import ADVANTAGE_METHODS, group_advantages
from rlmr.core.rewards import mix_rewards
from tests.properties import examples

PROPERTY_SETTINGS = settings(
    max_examples=examples(1500), deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@st.composite
def groups(draw, min_n=2, max_n=64):
    """A batch of groups: writing scores (with deliberate ties), pass flags, a scale, a dtype."""
    n = draw(st.integers(min_n, max_n))
    g = draw(st.integers(1, 4))
    scale = 10.0 ** draw(st.integers(-8, 8))
    offset = draw(st.sampled_from([0.0, 0.0, 1.0, -3.0, 1000.0]))
    # Draw from a small pool of levels so ties are common.
    levels = draw(st.lists(st.floats(-1, 1, allow_nan=False, width=32), min_size=1, max_size=6))
    w = [[(offset + draw(st.sampled_from(levels))) * scale for _ in range(n)] for _ in range(g)]
    passed = [[draw(st.booleans()) for _ in range(n)] for _ in range(g)]
    dtype = draw(st.sampled_from([torch.float64, torch.float32]))
    return torch.tensor(w, dtype=dtype), torch.tensor(passed)


@PROPERTY_SETTINGS
@given(groups(), st.sampled_from(ADVANTAGE_METHODS), st.sampled_from([0.01, 0.1, 1.0]))
def test_every_violator_gets_negative_advantage_when_someone_passes(batch, method, margin):
    w, c = batch
    r = mix_rewards(w, c, margin=margin)
    adv = group_advantages(r, method=method)
    mixed = c.any(1) & ~c.all(1)
    assume(bool(mixed.any()))
    violators = ~c & mixed.unsqueeze(1)
    assert bool((adv[violators] < 0).all()), (w, c, r, adv)
    assert bool(torch.isfinite(adv).all())


def _order_kept(w_row, a_row, mask_row, strict_gap):
    idx = [i for i in range(len(w_row)) if mask_row[i]]
    for i in idx:
        for j in idx:
            if w_row[i] > w_row[j]:
                assert a_row[i] >= a_row[j]
                if w_row[i] - w_row[j] > strict_gap:
                    assert a_row[i] > a_row[j]
            elif w_row[i] == w_row[j]:
                assert a_row[i] == a_row[j]


@PROPERTY_SETTINGS
@given(groups(max_n=24), st.sampled_from(ADVANTAGE_METHODS))
def test_writing_order_is_kept_among_compliant_and_among_violators(batch, method):
    w, c = batch
    # all_violate="writing" so that fully violating groups keep the order too
    # ("zero" flattens them on purpose; tested separately).
    r = mix_rewards(w, c, all_violate="writing")
    adv = group_advantages(r, method=method)
    wl, al, cl = w.tolist(), adv.tolist(), c.tolist()
    for g in range(w.shape[0]):
        magnitude = max(abs(x) for x in wl[g]) or 1.0
        # Strictness holds above float resolution; scores under the penalty's
        # absolute floor (1e-8) may tie after it is subtracted.
        gap = max(magnitude * (1e-3 if w.dtype == torch.float32 else 1e-9), 1e-12)
        _order_kept(wl[g], al[g], cl[g], gap)
        _order_kept(wl[g], al[g], [not x for x in cl[g]], gap)


@PROPERTY_SETTINGS
@given(groups())
def test_all_pass_groups_equal_writing_exactly(batch):
    w, _ = batch
    c = torch.ones_like(w, dtype=torch.bool)
    r = mix_rewards(w, c)
    assert r.dtype == w.dtype
    assert torch.equal(r, w)


@PROPERTY_SETTINGS
@given(groups(), st.sampled_from(ADVANTAGE_METHODS))
def test_all_violate_zero_gives_zero_advantages(batch, method):
    w, _ = batch
    c = torch.zeros_like(w, dtype=torch.bool)
    adv = group_advantages(mix_rewards(w, c, all_violate="zero"), method=method)
    assert torch.equal(adv, torch.zeros_like(adv))


def test_all_violate_writing_ranks_by_writing():
    w = torch.tensor([[0.1, 0.9, 0.5]])
    r = mix_rewards(w, torch.zeros(1, 3, dtype=torch.bool), all_violate="writing")
    assert torch.equal(r, w)


def test_all_violate_fraction_ranks_by_constraints_met():
    w = torch.tensor([[0.9, 0.1, 0.5]])
    frac = torch.tensor([[0.0, 0.5, 0.25]])
    r = mix_rewards(
        w, torch.zeros(1, 3, dtype=torch.bool), all_violate="fraction", passed_fraction=frac
    )
    assert torch.equal(r, frac)
    with pytest.raises(ValueError, match="passed_fraction: required"):
        mix_rewards(w, torch.zeros(1, 3, dtype=torch.bool), all_violate="fraction")


def test_dynamic_penalty_is_the_smallest_that_works_plus_margin():
    # n = 4, one violator with the best writing: delta = (4*0.9 - 2.1)/3 + margin*spread.
    w = torch.tensor([[0.9, 0.6, 0.4, 0.2]], dtype=torch.float64)
    c = torch.tensor([[False, True, True, True]])
    r = mix_rewards(w, c, margin=0.1)
    delta = (4 * 0.9 - 2.1) / 3 + 0.1 * 0.7
    assert r[0, 0].item() == pytest.approx(0.9 - delta, abs=1e-12)
    assert torch.equal(r[0, 1:], w[0, 1:])
    # The violator then sits margin * spread * (n - k) / n below the mean.
    assert (r[0, 0] - r.mean()).item() == pytest.approx(-0.1 * 0.7 * 3 / 4, abs=1e-12)


def test_violator_below_mean_needs_no_extra_penalty_beyond_margin():
    w = torch.tensor([[0.1, 0.6, 0.9]], dtype=torch.float64)
    c = torch.tensor([[False, True, True]])
    r = mix_rewards(w, c, margin=0.1)
    assert r[0, 0].item() == pytest.approx(0.1 - 0.1 * 0.8)


def test_baseline_strategies():
    w = torch.tensor([[0.2, 0.8]])
    c = torch.tensor([[True, False]])
    assert torch.equal(mix_rewards(w, c, strategy="writing_only"), w)
    assert torch.equal(mix_rewards(w, c, strategy="verifier_only"), torch.tensor([[1.0, 0.0]]))
    assert torch.allclose(
        mix_rewards(w, c, strategy="fixed", fixed_weight=0.5), torch.tensor([[0.7, 0.8]])
    )


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_writing_raises(bad):
    w = torch.tensor([[0.1, bad]])
    with pytest.raises(ValueError, match="writing: contains"):
        mix_rewards(w, torch.tensor([[True, False]]))


def test_bad_arguments_are_named():
    w = torch.zeros(2, 3)
    c = torch.zeros(2, 3, dtype=torch.bool)
    with pytest.raises(ValueError, match="passed: expected a bool"):
        mix_rewards(w, c.float())
    with pytest.raises(ValueError, match="same shape"):
        mix_rewards(w, c[:, :2])
    with pytest.raises(ValueError, match="strategy: unknown value 'dynamik'"):
        mix_rewards(w, c, strategy="dynamik")
    with pytest.raises(ValueError, match="all_violate: unknown"):
        mix_rewards(w, c, all_violate="nope")
    with pytest.raises(ValueError, match="margin"):
        mix_rewards(w, c, margin=0.0)
    with pytest.raises(ValueError, match="shape \\[groups, n\\]"):
        mix_rewards(torch.zeros(3), torch.zeros(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="passed_fraction: values must lie"):
        mix_rewards(w, c, passed_fraction=torch.full((2, 3), 1.5))
    with pytest.raises(ValueError, match="half precision|cannot hold"):
        mix_rewards(w.to(torch.bfloat16), c)
    with pytest.raises(ValueError, match="passed_fraction: contains"):
        mix_rewards(w, c, passed_fraction=torch.full((2, 3), math.nan))

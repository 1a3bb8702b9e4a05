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


# ----------------------------------------------------------------- inputs, dtypes, exact values


def test_dynamic_penalties_of_several_groups_are_computed_per_group():
    w = torch.tensor(
        [
            [0.9, 0.6, 0.3, 0.0],  # k = 1: delta = (4*0.9 - 1.8)/3 + 0.1*0.9 = 0.69
            [2.0, 10.0, 4.0, 0.0],  # k = 2: delta = (4*10 - 16)/2 + 0.1*10 = 13
            [1.0, 2.0, 3.0, 4.0],  # all violate: zero by default
            [5.0, 1.0, 2.0, 3.0],  # k = 3: delta = (4*3 - 11)/1 + 0.1*4 = 1.4
            [0.1, 0.2, 0.3, 0.4],  # all pass: r = w
        ],
        dtype=torch.float64,
    )
    c = torch.tensor(
        [
            [False, True, True, True],
            [False, False, True, True],
            [False, False, False, False],
            [True, False, False, False],
            [True, True, True, True],
        ]
    )
    want = [
        [0.9 - 0.69, 0.6, 0.3, 0.0],
        [2.0 - 13.0, 10.0 - 13.0, 4.0, 0.0],
        [0.0, 0.0, 0.0, 0.0],
        [5.0, 1.0 - 1.4, 2.0 - 1.4, 3.0 - 1.4],
        [0.1, 0.2, 0.3, 0.4],
    ]
    r = mix_rewards(w, c)
    assert r.dtype == torch.float64 and r.shape == (5, 4)
    for got, row in zip(r.tolist(), want):
        assert got == pytest.approx(row, rel=1e-12, abs=1e-12)
    assert torch.equal(r[c], w[c])  # compliant scores kept bit for bit
    for g in range(5):
        assert torch.equal(r[g : g + 1], mix_rewards(w[g : g + 1], c[g : g + 1]))


def test_groups_at_extreme_scales_are_mixed_as_if_alone():
    pattern = [3.0, 1.0, -2.0, 0.5]
    w = torch.tensor([[x * s for x in pattern] for s in (1e300, 1e-300, 1.0)], dtype=torch.float64)
    c = torch.tensor([[False, True, True, False]] * 3)
    r = mix_rewards(w, c)
    for g in range(3):
        assert torch.equal(r[g : g + 1], mix_rewards(w[g : g + 1], c[g : g + 1]))
    # Well above the absolute floor the penalty is proportional to the scores.
    assert (r[0] / 1e300).tolist() == pytest.approx(r[2].tolist(), rel=1e-12)


def test_penalty_floors_for_equal_and_tiny_scores():
    # Equal scores: spread 0, so the margin unit is 1e-3 of the magnitude: 0.1 * 1e-3 * 0.5.
    r = mix_rewards(torch.tensor([[0.5, 0.5, 0.5]], dtype=torch.float64), [[False, True, True]])
    assert r.tolist()[0] == pytest.approx([0.5 - 0.5e-4, 0.5, 0.5], rel=1e-13)
    # Tiny scores: the absolute floor 1e-8 sets the unit: 1e-12 - 0.1 * 1e-8.
    r = mix_rewards(torch.tensor([[1e-12, 1e-12]], dtype=torch.float64), [[False, True]])
    assert r.tolist()[0] == pytest.approx([1e-12 - 1e-9, 1e-12], rel=1e-12)
    # All zero: no division by a zero magnitude.
    r = mix_rewards(torch.zeros(1, 3, dtype=torch.float64), [[False, True, True]])
    assert r.tolist()[0] == pytest.approx([-1e-9, 0.0, 0.0], rel=1e-12)


def test_float32_rewards_are_the_float64_result_rounded():
    torch.manual_seed(3)
    w = torch.rand(6, 5) * 4 - 1
    c = torch.rand(6, 5) > 0.5
    c[0] = True
    c[1] = False
    frac = torch.where(c, 1.0, 0.5)
    for kwargs in (
        dict(),
        dict(all_violate="writing"),
        dict(all_violate="fraction", passed_fraction=frac.double()),
        dict(strategy="fixed", fixed_weight=0.1),
        dict(strategy="verifier_only"),
    ):
        r = mix_rewards(w, c, **kwargs)
        assert r.dtype == torch.float32
        assert torch.equal(r, mix_rewards(w.double(), c, **kwargs).float()), kwargs
        assert mix_rewards(w.double(), c, **kwargs).dtype == torch.float64


def test_defaults_and_baselines_exactly():
    w = torch.tensor([[0.2, 0.8], [0.5, 0.25]], dtype=torch.float64)
    c = torch.tensor([[True, False], [False, False]])
    assert torch.equal(mix_rewards(w, c), mix_rewards(w, c, "dynamic", "zero", margin=0.1))
    assert mix_rewards(w, c)[1].tolist() == [0.0, 0.0]
    fixed = mix_rewards(w, c, strategy="fixed")
    assert fixed.tolist() == [[1.2, 0.8], [0.5, 0.25]]
    assert mix_rewards(w, c, strategy="fixed", fixed_weight=0.1).tolist() == [
        [0.2 + 0.1, 0.8],
        [0.5, 0.25],
    ]
    assert mix_rewards(w, c, strategy="fixed", fixed_weight=-0.5).tolist()[0] == [-0.3, 0.8]
    v = mix_rewards(w, c, strategy="verifier_only")
    assert v.dtype == torch.float64 and v.tolist() == [[1.0, 0.0], [0.0, 0.0]]


def test_lists_are_accepted():
    r = mix_rewards([[0.9, 0.6, 0.3]], [[False, True, True]], margin=0.5)
    assert r.dtype == torch.get_default_dtype()
    # delta = (3*0.9 - 1.8)/2 + 0.5*0.6 = 0.75
    assert r.tolist()[0] == pytest.approx([0.15, 0.6, 0.3], rel=1e-6)
    f = mix_rewards(
        [[0.9, 0.1]], [[False, False]], all_violate="fraction", passed_fraction=[[0, 0.5]]
    )
    assert f.tolist() == [[0.0, 0.5]]


def test_passed_fraction_bounds_and_consistency():
    w = torch.zeros(1, 3)
    c = torch.tensor([[True, False, False]])
    for ok in ([[1.0, 0.0, 1.0]], [[1.0, 0.5, 0.25]]):
        mix_rewards(w, c, passed_fraction=torch.tensor(ok))
    for bad in ([[1.0, -0.1, 0.0]], [[1.0, 1.5, 0.0]], [[1.0, 0.0, 2.5]]):
        with pytest.raises(ValueError, match=r"^passed_fraction: values must lie in \[0, 1\]$"):
            mix_rewards(w, c, passed_fraction=torch.tensor(bad))
    with pytest.raises(
        ValueError,
        match=r"^passed_fraction: a response that passed must have passed_fraction == 1$",
    ):
        mix_rewards(w, c, passed_fraction=torch.tensor([[0.5, 0.0, 0.0]]))
    with pytest.raises(ValueError, match=r"^passed_fraction: contains 1 NaN and 0 inf"):
        mix_rewards(w, c, passed_fraction=torch.tensor([[1.0, math.nan, 0.0]]))
    with pytest.raises(ValueError, match=r"^passed_fraction: expected a real-valued tensor"):
        mix_rewards(w, c, passed_fraction=c)
    with pytest.raises(
        ValueError, match=r"^writing and passed_fraction must have the same shape, got \(1, 3\)"
    ):
        mix_rewards(w, c, passed_fraction=torch.ones(1, 2))
    with pytest.raises(
        ValueError, match=r'^passed_fraction: required when all_violate="fraction"$'
    ):
        mix_rewards(w, torch.zeros(1, 3, dtype=torch.bool), all_violate="fraction")


def test_mix_errors_name_the_argument():
    w = torch.zeros(2, 3)
    c = torch.zeros(2, 3, dtype=torch.bool)
    cases = [
        (dict(writing=c), r"^writing: expected a real-valued tensor, got dtype torch.bool$"),
        (dict(writing=torch.zeros(3)), r"^writing: expected shape \[groups, n\], got \(3,\)$"),
        (dict(writing=torch.zeros(2, 0)), r"^writing: groups must hold at least one response"),
        (dict(writing=torch.tensor([[0.0, math.nan]])), r"^writing: contains 1 NaN and 0 inf"),
        (dict(passed=c.float()), r"^passed: expected a bool tensor, got dtype torch.float32$"),
        (dict(passed=c[:, :2]), r"^writing and passed must have the same shape, got \(2, 3\)"),
        (
            dict(strategy="dynamik"),
            r"^strategy: unknown value 'dynamik'; "
            r"expected one of dynamic, writing_only, verifier_only, fixed$",
        ),
        (
            dict(all_violate="nope"),
            r"^all_violate: unknown value 'nope'; expected one of zero, writing, fraction$",
        ),
    ]
    for half in (torch.float16, torch.bfloat16):
        cases.append(
            (
                dict(writing=w.to(half)),
                rf"^writing: dtype {half} cannot hold the penalty margin exactly; "
                r"pass float32 or float64$",
            )
        )
    for margin in (0.0, -1.0, math.nan, math.inf):
        cases.append((dict(margin=margin), rf"^margin: must be a finite number > 0, got {margin}$"))
    for weight in (math.nan, math.inf, -math.inf):
        cases.append((dict(fixed_weight=weight), rf"^fixed_weight: must be finite, got {weight}$"))
    for override, match in cases:
        kwargs = dict(writing=w, passed=c) | override
        with pytest.raises(ValueError, match=match):
            mix_rewards(**kwargs)
    # Small margins and negative fixed weights are fine.
    mix_rewards(w, c, margin=0.5)
    mix_rewards(w, c, margin=1e-9)
    mix_rewards(w, c, strategy="fixed", fixed_weight=-2.0)


def test_each_group_is_mixed_on_its_own_whatever_else_is_in_the_batch():
    """A group's rewards depend on that group only: the spread and the scale that size its
    penalty are per group. An all-negative group beside a positive one is where a batch-wide
    maximum would show."""
    w = torch.tensor([[0.0, 10.0, 5.0, 1.0], [-1.0, -0.5, -0.2, -0.9]], dtype=torch.float64)
    c = torch.tensor([[True, True, False, True], [True, False, True, True]])
    together = mix_rewards(w, c)
    for g in range(2):
        alone = mix_rewards(w[g : g + 1], c[g : g + 1])
        assert torch.equal(together[g : g + 1], alone), g
    assert (together[~c] < together.mean(dim=1)).all()  # below its group's mean: negative advantage

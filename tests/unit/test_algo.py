"""GRPO maths: advantage estimators, KL estimators and the clipped token-level loss."""

from __future__ import annotations

import math
import re
import statistics
import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rlmr.core.algo import (
    ADVANTAGE_METHODS,
    LossSettings,
    behaviour_weights,
    entropy_from_logits,
    group_advantages,
    kl_estimate,
    masked_mean,
    policy_loss,
    sequence_kl,
    zero_std_mask,
)
from tests.properties import examples


def test_group_norm_matches_definition():
    r = torch.tensor([[1.0, 2.0, 3.0, 6.0]], dtype=torch.float64)
    expected = (r - r.mean()) / (r.std(unbiased=True) + 1e-6)
    assert torch.allclose(group_advantages(r), expected, atol=1e-12)


def test_dr_grpo_and_rloo_match_definitions():
    r = torch.tensor([[1.0, 2.0, 3.0, 6.0]], dtype=torch.float64)
    assert torch.allclose(group_advantages(r, "dr_grpo"), r - r.mean(), atol=1e-12)
    loo = torch.stack([r[0, i] - (r.sum() - r[0, i]) / 3 for i in range(4)]).unsqueeze(0)
    assert torch.allclose(group_advantages(r, "rloo"), loo, atol=1e-12)


@settings(max_examples=examples(300), deadline=None)
@given(
    st.integers(1, 64),
    st.floats(-1e6, 1e6, allow_nan=False),
    st.sampled_from(["group_norm", "dr_grpo", "rloo"]),
)
def test_constant_groups_have_exactly_zero_advantage(n, value, method):
    r = torch.full((3, n), value, dtype=torch.float32)
    adv = group_advantages(r, method)
    assert torch.equal(adv, torch.zeros_like(adv))
    assert bool(zero_std_mask(r).all())


def test_advantages_keep_dtype_and_are_scale_robust():
    base = torch.tensor([[0.1, 0.5, 0.2, 0.9]], dtype=torch.float32)
    for scale in (1e-8, 1.0, 1e8, 1e30):
        adv = group_advantages(base * scale, "group_norm", eps=0.0)
        assert adv.dtype == torch.float32
        assert torch.allclose(adv, group_advantages(base, "group_norm", eps=0.0), rtol=1e-4)


def test_zero_std_mask_counts_groups():
    r = torch.tensor([[1.0, 1.0], [0.0, 1.0], [2.0, 2.0]])
    assert zero_std_mask(r).tolist() == [True, False, True]


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_rewards_raise(bad):
    with pytest.raises(ValueError, match="rewards: contains"):
        group_advantages(torch.tensor([[0.0, bad]]))


def test_unknown_method_raises():
    with pytest.raises(ValueError, match="method: unknown value 'grpo'"):
        group_advantages(torch.zeros(1, 2), "grpo")


# ----------------------------------------------------------------- KL


def test_kl_estimators_match_definitions():
    logp = torch.tensor([-1.0, -2.0, -0.5])
    ref = torch.tensor([-1.5, -1.0, -0.5])
    d = ref - logp
    assert torch.allclose(kl_estimate(logp, ref, "k1"), logp - ref)
    assert torch.allclose(kl_estimate(logp, ref, "k2"), 0.5 * (logp - ref) ** 2)
    assert torch.allclose(kl_estimate(logp, ref, "k3"), torch.exp(d) - d - 1)
    assert bool((kl_estimate(logp, ref, "k3") >= 0).all())


def test_k3_is_unbiased_for_kl():
    # Sample from p, average k3 with respect to q: approaches KL(p || q).
    torch.manual_seed(0)
    p = torch.tensor([0.5, 0.3, 0.2])
    q = torch.tensor([0.2, 0.5, 0.3])
    idx = torch.multinomial(p, 200_000, replacement=True)
    est = kl_estimate(p.log()[idx], q.log()[idx], "k3").mean()
    exact = (p * (p.log() - q.log())).sum()
    assert est.item() == pytest.approx(exact.item(), rel=0.02)


def test_kl_clamps_extreme_log_ratios_to_finite_values():
    logp = torch.tensor([-1e4, 0.0])
    ref = torch.tensor([0.0, -1e4])
    for kind in ("k1", "k2", "k3"):
        assert bool(torch.isfinite(kl_estimate(logp, ref, kind)).all())


def test_sequence_kl_sums_masked_tokens():
    logp = torch.tensor([[-1.0, -1.0, -1.0]])
    ref = torch.tensor([[-2.0, -2.0, -2.0]])
    mask = torch.tensor([[1, 1, 0]])
    assert sequence_kl(logp, ref, mask, "k1").tolist() == [2.0]


# ----------------------------------------------------------------- loss


def _batch():
    torch.manual_seed(0)
    logp_old = -torch.rand(3, 5) * 2
    logp = logp_old + 0.3 * torch.randn(3, 5)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], dtype=torch.bool)
    adv = torch.tensor([1.0, -0.5, 2.0])
    return logp, logp_old, adv, mask


def test_policy_loss_matches_reference_formula_token_mean():
    logp, logp_old, adv, mask = _batch()
    out = policy_loss(logp, logp_old, adv, mask, LossSettings(clip_low=0.2, clip_high=0.28))
    ratio = torch.exp(logp - logp_old)
    a = adv[:, None].expand_as(logp)
    per_tok = -torch.minimum(ratio * a, ratio.clamp(0.8, 1.28) * a)
    expected = per_tok[mask].mean()
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert out.tokens == int(mask.sum())


def test_seq_mean_token_mean_averages_per_sequence_first():
    logp, logp_old, adv, mask = _batch()
    out = policy_loss(logp, logp_old, adv, mask, LossSettings(aggregation="seq_mean_token_mean"))
    ratio = torch.exp(logp - logp_old)
    a = adv[:, None].expand_as(logp)
    per_tok = -torch.minimum(ratio * a, ratio.clamp(0.8, 1.28) * a)
    expected = torch.stack([per_tok[i][mask[i]].mean() for i in range(3)]).mean()
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_on_policy_gradient_is_advantage_weighted_score():
    # At ratio 1 the clipped loss's gradient w.r.t. logp is -A / tokens per token.
    logp_old = torch.tensor([[-1.0, -2.0], [-0.5, -0.7]])
    logp = logp_old.clone().requires_grad_(True)
    adv = torch.tensor([2.0, -1.0])
    mask = torch.ones(2, 2, dtype=torch.bool)
    policy_loss(logp, logp_old, adv, mask).loss.backward()
    assert torch.allclose(logp.grad, -adv[:, None].expand(2, 2) / 4)


def test_clip_higher_is_asymmetric():
    logp_old = torch.zeros(1, 2)
    mask = torch.ones(1, 2, dtype=torch.bool)
    # ratio 1.25: inside 1 + 0.28, outside 1 + 0.2 -> gradient flows only with clip-higher.
    logp = torch.full((1, 2), math.log(1.25), requires_grad=True)
    policy_loss(
        logp, logp_old, torch.tensor([1.0]), mask, LossSettings(clip_low=0.2, clip_high=0.28)
    ).loss.backward()
    assert bool((logp.grad != 0).all())
    logp.grad = None
    out = policy_loss(
        logp, logp_old, torch.tensor([1.0]), mask, LossSettings(clip_low=0.2, clip_high=0.2)
    )
    out.loss.backward()
    assert bool((logp.grad == 0).all())
    assert out.clip_frac == 1.0


def test_dual_clip_bounds_negative_advantage_loss():
    logp_old = torch.zeros(1, 1)
    logp = torch.full((1, 1), math.log(10.0))
    mask = torch.ones(1, 1, dtype=torch.bool)
    plain = policy_loss(logp, logp_old, torch.tensor([-1.0]), mask)
    dual = policy_loss(logp, logp_old, torch.tensor([-1.0]), mask, LossSettings(dual_clip=3.0))
    assert plain.loss.item() == pytest.approx(10.0)
    assert dual.loss.item() == pytest.approx(3.0)


def test_kl_in_loss_adds_beta_times_estimator():
    logp, logp_old, adv, mask = _batch()
    ref = logp_old - 0.1
    base = policy_loss(logp, logp_old, adv, mask)
    with_kl = policy_loss(
        logp, logp_old, adv, mask, LossSettings(kl_coef=0.5, kl_estimator="k3"), logp_ref=ref
    )
    k3 = kl_estimate(logp, ref, "k3")
    assert with_kl.loss.item() == pytest.approx(
        base.loss.item() + 0.5 * k3[mask].mean().item(), rel=1e-6
    )
    assert with_kl.kl == pytest.approx(k3[mask].mean().item(), rel=1e-6)
    with pytest.raises(ValueError, match="logp_ref: required"):
        policy_loss(logp, logp_old, adv, mask, LossSettings(kl_coef=0.1))


def test_extreme_log_ratios_give_finite_loss_and_grads():
    logp_old = torch.tensor([[-200.0, 0.0]])
    logp = torch.tensor([[0.0, -300.0]], requires_grad=True)
    mask = torch.ones(1, 2, dtype=torch.bool)
    out = policy_loss(
        logp, logp_old, torch.tensor([3.0]), mask, LossSettings(kl_coef=1.0), logp_ref=logp_old
    )
    out.loss.backward()
    assert math.isfinite(out.loss.item())
    assert bool(torch.isfinite(logp.grad).all())


def test_empty_mask_gives_zero_loss_not_nan():
    logp, logp_old, adv, _ = _batch()
    out = policy_loss(logp, logp_old, adv, torch.zeros_like(logp, dtype=torch.bool))
    assert out.loss.item() == 0.0


def test_policy_loss_rejects_bad_input():
    logp, logp_old, adv, mask = _batch()
    with pytest.raises(ValueError, match="logp_old: contains 1 NaN"):
        bad = logp_old.clone()
        bad[0, 0] = math.nan
        policy_loss(logp, bad, adv, mask)
    with pytest.raises(ValueError, match="advantages: expected shape"):
        policy_loss(logp, logp_old, adv[:2], mask)
    with pytest.raises(ValueError, match="advantages: contains"):
        policy_loss(logp, logp_old, torch.tensor([1.0, math.inf, 0.0]), mask)
    with pytest.raises(ValueError, match="mask: expected shape"):
        policy_loss(logp, logp_old, adv, mask[:, :2])
    with pytest.raises(ValueError, match="clip_low"):
        policy_loss(logp, logp_old, adv, mask, LossSettings(clip_low=1.5))


def test_masked_mean_and_entropy():
    v = torch.tensor([[1.0, 3.0, 100.0]])
    assert masked_mean(v, torch.tensor([[1, 1, 0]])).item() == 2.0
    assert masked_mean(v, torch.zeros(1, 3)).item() == 0.0
    uniform = torch.zeros(2, 4)
    assert torch.allclose(entropy_from_logits(uniform), torch.full((2,), math.log(4)))


def test_global_normalizer_makes_micro_batches_sum_to_the_full_token_mean():
    logp, logp_old, adv, mask = _batch()
    full = policy_loss(logp, logp_old, adv, mask).loss
    tokens = float(mask.sum())
    parts = sum(
        policy_loss(
            logp[i : i + 1], logp_old[i : i + 1], adv[i : i + 1], mask[i : i + 1], normalizer=tokens
        ).loss
        for i in range(3)
    )
    assert parts.item() == pytest.approx(full.item(), rel=1e-6)
    seq = policy_loss(
        logp, logp_old, adv, mask, LossSettings(aggregation="seq_mean_token_mean")
    ).loss
    parts = sum(
        policy_loss(
            logp[i : i + 1],
            logp_old[i : i + 1],
            adv[i : i + 1],
            mask[i : i + 1],
            LossSettings(aggregation="seq_mean_token_mean"),
            normalizer=3.0,
        ).loss
        for i in range(3)
    )
    assert parts.item() == pytest.approx(seq.item(), rel=1e-6)


@pytest.mark.parametrize("advantage", [1.0, -1.0])
def test_clipping_binds_exactly_where_the_ratio_leaves_the_band(advantage):
    """Clip-higher (0.2, 0.28): a positive advantage stops pushing once the ratio passes 1.28, a
    negative one once it falls below 0.8; elsewhere each token's gradient is -ratio * A / N."""
    low, high = 0.2, 0.28
    ratios = torch.tensor([0.5, 0.79, 0.81, 1.0, 1.27, 1.29, 2.0], dtype=torch.float64)
    logp = ratios.log().clone().requires_grad_(True)
    mask = torch.ones(1, len(ratios), dtype=torch.bool)
    out = policy_loss(
        logp[None],
        torch.zeros(1, len(ratios), dtype=torch.float64),
        torch.tensor([advantage], dtype=torch.float64),
        mask,
        LossSettings(clip_low=low, clip_high=high),
    )
    out.loss.backward()
    clipped = ratios > 1 + high if advantage > 0 else ratios < 1 - low
    expected = torch.where(clipped, torch.zeros_like(ratios), -ratios * advantage / len(ratios))
    assert torch.allclose(logp.grad, expected, rtol=1e-12, atol=0)
    assert out.clip_frac == pytest.approx(float(clipped.sum()) / len(ratios))


# ----------------------------------------------------------------- inputs, dtypes, exact values


def test_group_norm_default_eps_is_one_in_a_million():
    # n = 2, rewards 0 and 1: mean 0.5, Bessel std sqrt(0.5).
    adv = group_advantages(torch.tensor([[0.0, 1.0]], dtype=torch.float64))
    a = 0.5 / (math.sqrt(0.5) + 1e-6)
    assert adv[0].tolist() == pytest.approx([-a, a], rel=1e-13)
    adv0 = group_advantages(torch.tensor([[0.0, 1.0]], dtype=torch.float64), eps=0.0)
    assert adv0.tolist()[0] == pytest.approx([-math.sqrt(0.5), math.sqrt(0.5)], rel=1e-13)


def test_advantages_of_several_groups_use_each_groups_own_statistics():
    rows = [[1.0, 2.0, 3.0, 6.0], [10.0, 10.0, 40.0, 0.0], [0.1, 0.1, 0.1, 0.1]]
    r = torch.tensor(rows, dtype=torch.float64)
    for method in ADVANTAGE_METHODS:
        adv = group_advantages(r, method)
        assert adv.shape == (3, 4)
        for row, got in zip(rows[:2], adv.tolist()[:2]):
            mean = statistics.fmean(row)
            if method == "group_norm":
                want = [(x - mean) / (statistics.stdev(row) + 1e-6) for x in row]
            elif method == "dr_grpo":
                want = [x - mean for x in row]
            else:
                want = [x - (sum(row) - x) / 3 for x in row]
            assert got == pytest.approx(want, rel=1e-12)
        # 0.1 * 4 / 4 != 0.1 in floating point: the constant group is zeroed explicitly.
        assert adv[2].tolist() == [0.0] * 4


def test_advantages_of_groups_at_extreme_scales_in_one_batch():
    pattern = [1.0, -1.0, 0.0, 0.5]
    r = torch.tensor(
        [[x * 1e300 for x in pattern], [x * 1e-300 for x in pattern]], dtype=torch.float64
    )
    for method, unit in (("group_norm", None), ("dr_grpo", 1.0), ("rloo", 4 / 3)):
        adv = group_advantages(r, method, eps=0.0)
        alone = [group_advantages(r[i : i + 1], method, eps=0.0)[0] for i in range(2)]
        assert torch.equal(adv[0], alone[0]) and torch.equal(adv[1], alone[1])
        mean = statistics.fmean(pattern)
        for i, scale in enumerate((1e300, 1e-300)):
            if unit is None:
                want = [(x - mean) / statistics.stdev(pattern) for x in pattern]
            else:
                want = [(x - mean) * unit * scale for x in pattern]
            assert adv[i].tolist() == pytest.approx(want, rel=1e-12)


def test_advantages_of_float32_are_the_float64_result_rounded():
    torch.manual_seed(1)
    r = torch.rand(8, 6) * 10 - 3
    assert r.dtype == torch.float32
    for method in ADVANTAGE_METHODS:
        adv = group_advantages(r, method)
        assert adv.dtype == torch.float32
        assert torch.equal(adv, group_advantages(r.double(), method).float())
        assert group_advantages(r.double(), method).dtype == torch.float64


def test_advantages_accept_lists_and_integers():
    adv = group_advantages([[1, 3]], "dr_grpo")
    assert adv.dtype == torch.get_default_dtype()
    assert adv.tolist() == [[-1.0, 1.0]]
    assert group_advantages([[1.0, 3.0]], "rloo").tolist() == [[-2.0, 2.0]]
    assert zero_std_mask([[1, 1], [1, 2]]).tolist() == [True, False]


@pytest.mark.parametrize("method", ADVANTAGE_METHODS)
def test_single_response_groups_get_zero_advantage_without_warnings(method):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. "std(): degrees of freedom is <= 0"
        adv = group_advantages(torch.tensor([[1.0], [-2.0]]), method)
    assert adv.tolist() == [[0.0], [0.0]]


def test_two_response_groups():
    r = torch.tensor([[1.0, 3.0]], dtype=torch.float64)
    assert group_advantages(r, "rloo").tolist() == [[-2.0, 2.0]]
    assert group_advantages(r, "dr_grpo").tolist() == [[-1.0, 1.0]]
    assert group_advantages(r, eps=0.0)[0].tolist() == pytest.approx(
        [-1 / math.sqrt(2), 1 / math.sqrt(2)], rel=1e-13
    )


def test_advantage_errors_name_the_argument():
    with pytest.raises(
        ValueError, match=r"^rewards: expected a real-valued tensor, got dtype torch.bool"
    ):
        group_advantages(torch.ones(1, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"^rewards: expected shape \[groups, n\], got \(3,\)"):
        group_advantages(torch.zeros(3))
    with pytest.raises(
        ValueError, match=r"^rewards: groups must hold at least one response, got n=0"
    ):
        group_advantages(torch.zeros(2, 0))
    with pytest.raises(
        ValueError,
        match=r"^method: unknown value 'grpo'; expected one of group_norm, dr_grpo, rloo$",
    ):
        group_advantages(torch.zeros(1, 2), "grpo")
    with pytest.raises(ValueError, match=r"^eps: must be >= 0, got -1e-06$"):
        group_advantages(torch.zeros(1, 2), eps=-1e-6)
    for bad, match in (
        (torch.ones(1, 2, dtype=torch.bool), r"^rewards: expected a real-valued tensor"),
        (torch.zeros(3), r"^rewards: expected shape \[groups, n\], got \(3,\)"),
        (torch.zeros(2, 0), r"^rewards: groups must hold at least one response"),
        (torch.tensor([[0.0, math.nan]]), r"^rewards: contains 1 NaN and 0 inf"),
    ):
        with pytest.raises(ValueError, match=match):
            zero_std_mask(bad)


def test_kl_defaults_are_k3_and_a_clamp_of_20():
    logp = torch.tensor([-1.0, 0.0, 30.0], dtype=torch.float64)
    ref = torch.tensor([-1.5, 30.0, 0.0], dtype=torch.float64)
    kl = kl_estimate(logp, ref)
    assert kl.dtype == torch.float64
    # log(p_ref / p) = -0.5, then +30 and -30 clamped to +-20.
    want = [math.expm1(d) - d for d in (-0.5, 20.0, -20.0)]
    assert kl.tolist() == pytest.approx(want, rel=1e-15)
    assert kl_estimate(logp, ref, "k1").tolist() == [0.5, -20.0, 20.0]
    assert kl_estimate(logp, ref, "k2", clamp=0.25).tolist() == [0.03125, 0.03125, 0.03125]


def test_kl_accepts_lists():
    assert kl_estimate([-1.0, -2.0], [-1.5, -1.0], "k1").tolist() == [0.5, -1.0]


def test_kl_errors_name_the_argument():
    x = torch.zeros(2)
    cases = [
        (dict(logp=torch.ones(2, dtype=torch.bool)), r"^logp: expected a real-valued tensor"),
        (dict(logp_ref=torch.ones(2, dtype=torch.bool)), r"^logp_ref: expected a real-valued"),
        (dict(logp_ref=torch.zeros(3)), r"^logp and logp_ref must have the same shape, got \(2,\)"),
        (dict(logp=torch.tensor([0.0, math.inf])), r"^logp: contains 0 NaN and 1 inf"),
        (dict(logp_ref=torch.tensor([math.nan, 0.0])), r"^logp_ref: contains 1 NaN and 0 inf"),
        (dict(kind="k4"), r"^kind: unknown value 'k4'; expected one of k1, k2, k3$"),
        (dict(clamp=0.0), r"^clamp: must be > 0, got 0.0$"),
    ]
    for override, match in cases:
        kwargs = dict(logp=x, logp_ref=x) | override
        with pytest.raises(ValueError, match=match):
            kl_estimate(**kwargs)
    assert kl_estimate(x, x, clamp=0.5).tolist() == [0.0, 0.0]


def test_sequence_kl_defaults_kind_and_clamp():
    logp = torch.tensor([[0.0, 0.0, 0.0], [-1.0, -1.0, -1.0]], dtype=torch.float64)
    ref = torch.tensor([[-1.0, -50.0, 0.0], [-2.0, -2.0, -2.0]], dtype=torch.float64)
    mask = [[1, 1, 0], [1, 0, 1]]
    # k1 by default, log-ratio clamped to 20: 1 + 20; 1 + 1.
    assert sequence_kl(logp, ref, mask).tolist() == [21.0, 2.0]
    assert sequence_kl(logp, ref, mask, kind="k2", clamp=5.0).tolist() == [13.0, 1.0]
    k3 = sequence_kl(logp, ref, mask, kind="k3")
    assert k3.tolist() == pytest.approx(
        [math.expm1(-1) + 1 + math.expm1(-20) + 20, 2 * (math.expm1(-1) + 1)], rel=1e-15
    )
    # One sequence as a 1-D tensor: the tokens are the last dimension.
    assert sequence_kl(logp[0], ref[0], torch.tensor([True, True, False])).item() == 21.0


def test_masked_mean_per_dimension_dtype_and_single_token():
    v = torch.tensor([[1.0, 3.0, 100.0], [4.0, 6.0, 8.0]])
    assert masked_mean(v, torch.tensor([[1, 1, 0], [0, 0, 0]]), dim=1).tolist() == [2.0, 0.0]
    assert masked_mean(v, torch.tensor([[0, 0, 1], [0, 0, 0]])).item() == 100.0
    m64 = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
    out = masked_mean(v, m64)
    assert out.dtype == torch.float32 and out.item() == 3.5


def test_entropy_from_logits_uses_the_last_dimension():
    # Two vocabularies of 3 per position, positions arranged [2, 2].
    logits = torch.tensor(
        [
            [[0.0, 0.0, 0.0], [0.0, math.log(2.0), math.log(3.0)]],
            [[5.0, 5.0, 5.0], [0.0, 0.0, -1e4]],
        ]
    )
    h = entropy_from_logits(logits)
    assert h.shape == (2, 2)
    p = [1 / 6, 2 / 6, 3 / 6]
    want = [[math.log(3), -sum(q * math.log(q) for q in p)], [math.log(3), math.log(2)]]
    assert h.tolist()[0] == pytest.approx(want[0], rel=1e-6)
    assert h.tolist()[1] == pytest.approx(want[1], rel=1e-6)


def _ref_token_loss(log_ratio, a, low=0.2, high=0.28, dual=None):
    """One token's clipped surrogate loss, written out in Python floats."""
    r = math.exp(log_ratio)
    loss = -min(r * a, min(max(r, 1 - low), 1 + high) * a)
    if dual is not None and a < 0:
        loss = min(loss, -dual * a)
    return loss


def test_policy_loss_statistics_match_a_hand_computation():
    # Two sequences (A = +1.5 and -2), one masked token; log-ratios inside and outside the band.
    lr = [[0.1, -0.3, 0.5, 2.0], [0.4, -0.5, 0.05, 0.0]]
    adv = [1.5, -2.0]
    mask = [[True, True, True, False], [True, True, True, True]]
    logp_old = torch.tensor(
        [[-1.0, -2.0, -0.5, -3.0], [-0.7, -1.1, -2.2, -0.9]], dtype=torch.float64
    )
    logp = logp_old + torch.tensor(lr, dtype=torch.float64)
    ref = logp_old - 0.25
    out = policy_loss(
        logp, logp_old, torch.tensor(adv, dtype=torch.float64), torch.tensor(mask),
        LossSettings(kl_coef=0.1, kl_estimator="k1"), logp_ref=ref,
    )  # fmt: skip
    toks = [(x, adv[b]) for b in range(2) for x, m in zip(lr[b], mask[b]) if m]
    n = len(toks)
    pg = [_ref_token_loss(x, a) for x, a in toks]
    kl = [x + 0.25 for x, _ in toks]  # k1 = logp - logp_ref
    clipped = [min(max(math.exp(x), 0.8), 1.28) * a < math.exp(x) * a for x, a in toks]
    assert out.tokens == n == 7
    assert out.loss.dtype == torch.float64
    assert out.loss.item() == pytest.approx(sum(p + 0.1 * k for p, k in zip(pg, kl)) / n, rel=1e-12)
    assert out.pg_loss == pytest.approx(sum(pg) / n, rel=1e-12)
    assert out.kl == pytest.approx(sum(kl) / n, rel=1e-12)
    assert out.clip_frac == sum(clipped) / n and sum(clipped) == 2
    assert out.ratio_mean == pytest.approx(sum(math.exp(x) for x, _ in toks) / n, rel=1e-12)
    assert out.approx_kl_old == pytest.approx(
        sum(math.expm1(-x) + x for x, _ in toks) / n, rel=1e-12
    )


def test_policy_loss_clamps_log_ratios_in_loss_and_statistics():
    # log-ratios +50 and -50 are clamped to +-20 (the default log_ratio_clamp).
    logp_old = torch.zeros(1, 2, dtype=torch.float64)
    logp = torch.tensor([[50.0, -50.0]], dtype=torch.float64)
    mask = torch.ones(1, 2, dtype=torch.bool)
    out = policy_loss(logp, logp_old, torch.tensor([-1.0], dtype=torch.float64), mask)
    big, small = math.exp(20.0), math.exp(-20.0)
    assert out.loss.item() == pytest.approx((big + 0.8) / 2, rel=1e-12)
    assert out.ratio_mean == pytest.approx((big + small) / 2, rel=1e-12)
    assert out.approx_kl_old == pytest.approx(
        (math.expm1(-20.0) + 20.0 + math.expm1(20.0) - 20.0) / 2, rel=1e-12
    )
    asym = policy_loss(
        torch.tensor([[50.0, -0.5]], dtype=torch.float64), logp_old, torch.tensor([1.0]), mask,
        LossSettings(log_ratio_clamp=3.0),
    )  # fmt: skip
    assert asym.ratio_mean == pytest.approx((math.exp(3.0) + math.exp(-0.5)) / 2, rel=1e-12)
    assert asym.approx_kl_old == pytest.approx(
        (math.expm1(-3.0) + 3.0 + math.expm1(0.5) - 0.5) / 2, rel=1e-12
    )
    assert asym.loss.item() == pytest.approx((-1.28 - math.exp(-0.5)) / 2, rel=1e-12)


def test_single_token_and_empty_batches_give_exact_statistics():
    one = policy_loss(
        torch.tensor([[math.log(1.1), 0.0]]), torch.zeros(1, 2), torch.tensor([2.0]),
        torch.tensor([[True, False]]),
    )  # fmt: skip
    assert one.tokens == 1
    assert one.loss.item() == pytest.approx(-2.2, rel=1e-6)
    assert one.pg_loss == pytest.approx(-2.2, rel=1e-6)
    assert one.ratio_mean == pytest.approx(1.1, rel=1e-6)
    empty = policy_loss(torch.zeros(2, 2), torch.zeros(2, 2), [1.0, 1.0], [[0, 0], [0, 0]])
    assert (empty.tokens, empty.pg_loss, empty.ratio_mean, empty.clip_frac) == (0, 0.0, 0.0, 0.0)
    seq = policy_loss(
        torch.zeros(2, 2), torch.zeros(2, 2), [1.0, 1.0], [[0, 0], [0, 0]],
        LossSettings(aggregation="seq_mean_token_mean"),
    )  # fmt: skip
    assert seq.loss.item() == 0.0


def test_seq_mean_of_one_sequence_is_its_token_mean():
    logp, logp_old, adv, mask = _batch()
    for i in range(3):
        seq = policy_loss(
            logp[i : i + 1], logp_old[i : i + 1], adv[i : i + 1], mask[i : i + 1],
            LossSettings(aggregation="seq_mean_token_mean"),
        )  # fmt: skip
        tok = policy_loss(logp[i : i + 1], logp_old[i : i + 1], adv[i : i + 1], mask[i : i + 1])
        assert seq.loss.item() == pytest.approx(tok.loss.item(), rel=1e-6)


def test_seq_mean_ignores_empty_sequences_with_finite_zero_gradients():
    logp_old = torch.zeros(3, 2)
    logp = torch.tensor([[0.1, -0.1], [0.2, 0.0], [0.05, 0.3]], requires_grad=True)
    mask = torch.tensor([[True, True], [False, False], [True, False]])
    adv = torch.tensor([1.0, 5.0, -1.0])
    out = policy_loss(logp, logp_old, adv, mask, LossSettings(aggregation="seq_mean_token_mean"))
    want = ((-math.exp(0.1) - math.exp(-0.1)) / 2 + math.exp(0.05)) / 2
    assert out.loss.item() == pytest.approx(want, rel=1e-6)
    out.loss.backward()
    assert bool(torch.isfinite(logp.grad).all())
    assert logp.grad[1].tolist() == [0.0, 0.0] and logp.grad[2, 1].item() == 0.0


def test_per_token_advantages_and_lists_and_masks_of_any_kind():
    logp, logp_old, adv, mask = _batch()
    base = policy_loss(logp, logp_old, adv, mask)
    full = adv[:, None].expand(3, 5).clone()
    assert policy_loss(logp, logp_old, full, mask).loss.item() == base.loss.item()
    full[0, 3] = 100.0  # a masked token's advantage changes nothing
    assert policy_loss(logp, logp_old, full, mask).loss.item() == base.loss.item()
    full[0, 0] = -1.0
    assert policy_loss(logp, logp_old, full, mask).loss.item() != base.loss.item()
    for m in (mask.int(), mask.float(), mask.double(), mask.tolist(), mask.int().tolist()):
        out = policy_loss(logp.tolist(), logp_old.tolist(), adv.tolist(), m)
        assert out.loss.item() == pytest.approx(base.loss.item(), rel=1e-6)
        assert (out.tokens, out.clip_frac) == (base.tokens, base.clip_frac)
    with pytest.raises(ValueError, match=r"^mask: values must be 0 or 1$"):
        policy_loss(logp, logp_old, adv, mask.float() * 0.5)


def test_dual_clip_bound_scales_with_the_advantage_and_spares_positive_ones():
    logp_old = torch.zeros(1, 1)
    logp = torch.full((1, 1), math.log(10.0))
    mask = torch.ones(1, 1, dtype=torch.bool)
    dual = LossSettings(dual_clip=3.0)
    assert policy_loss(logp, logp_old, [-2.0], mask).loss.item() == pytest.approx(20.0)
    assert policy_loss(logp, logp_old, [-2.0], mask, dual).loss.item() == pytest.approx(6.0)
    assert policy_loss(logp, logp_old, [0.5], mask, dual).loss.item() == pytest.approx(-0.64)
    assert policy_loss(logp, logp_old, [0.0], mask, dual).loss.item() == 0.0


def test_kl_in_loss_uses_the_chosen_estimator_and_clamp():
    logp = torch.zeros(1, 2)
    ref = torch.tensor([[-10.0, -1.0]])
    mask = torch.ones(1, 2, dtype=torch.bool)
    out = policy_loss(
        logp, logp, [0.0], mask, LossSettings(kl_coef=0.5, kl_estimator="k1", log_ratio_clamp=5.0),
        logp_ref=ref,
    )  # fmt: skip
    assert out.kl == pytest.approx(3.0)  # (min(10, 5) + 1) / 2
    assert out.loss.item() == pytest.approx(1.5)
    with pytest.raises(ValueError, match=r"^logp_ref: required when kl_coef > 0$"):
        policy_loss(logp, logp, [0.0], mask, LossSettings(kl_coef=0.1))


def test_normalizer_must_be_positive():
    logp, logp_old, adv, mask = _batch()
    with pytest.raises(ValueError, match=r"^normalizer: must be > 0 when set, got 0$"):
        policy_loss(logp, logp_old, adv, mask, normalizer=0)
    total = policy_loss(logp, logp_old, adv, mask).loss * int(mask.sum())
    half = policy_loss(logp, logp_old, adv, mask, normalizer=0.5).loss
    assert half.item() == pytest.approx(2 * total.item(), rel=1e-6)


def test_policy_loss_errors_name_the_argument():
    logp, logp_old, adv, mask = _batch()
    bool_t = torch.ones(3, 5, dtype=torch.bool)
    nan = logp.clone()
    nan[1, 1] = math.nan
    cases = [
        (dict(logp=bool_t), r"^logp: expected a real-valued tensor, got dtype torch.bool"),
        (dict(logp_old=bool_t), r"^logp_old: expected a real-valued tensor"),
        (dict(advantages=adv > 0), r"^advantages: expected a real-valued tensor"),
        (dict(logp_old=logp_old[:2]), r"^logp and logp_old must have the same shape"),
        (
            dict(logp=logp[0], logp_old=logp_old[0]),
            r"^logp: expected shape \[batch, T\], got \(5,\)$",
        ),
        (dict(advantages=adv[:2]), r"^advantages: expected shape \(3,\) or \(3, 5\), got \(2,\)$"),
        (dict(mask=mask[:, :2]), r"^mask: expected shape \(3, 5\), got \(3, 2\)$"),
        (dict(logp=nan), r"^logp: contains 1 NaN and 0 inf"),
        (dict(logp_old=nan), r"^logp_old: contains 1 NaN and 0 inf"),
        (
            dict(advantages=torch.tensor([0.0, -math.inf, 1.0])),
            r"^advantages: contains 0 NaN and 5 inf",
        ),
    ]
    for override, match in cases:
        kwargs = dict(logp=logp, logp_old=logp_old, advantages=adv, mask=mask) | override
        with pytest.raises(ValueError, match=match):
            policy_loss(**kwargs)


@pytest.mark.parametrize(
    "field, bad, good, match",
    [
        ("clip_low", [-0.1, 1.0, 1.5], [0.0, 0.99], r"^clip_low: must be in \[0, 1\), got "),
        ("clip_high", [-0.01], [0.0, 0.5, 2.0], r"^clip_high: must be >= 0, got "),
        ("dual_clip", [1.0, 0.5], [None, 1.5, 3.0], r"^dual_clip: must be > 1 when set, got "),
        ("kl_coef", [-0.1], [0.0, 0.5, 2.0], r"^kl_coef: must be >= 0, got "),
        ("log_ratio_clamp", [0.0, -1.0], [0.5, 20.0], r"^log_ratio_clamp: must be > 0, got "),
        (
            "kl_estimator",
            ["k4"],
            ["k1", "k2"],
            r"^kl_estimator: unknown value 'k4'; expected one of ",
        ),
        ("aggregation", ["mean"], ["seq_mean_token_mean"], r"^aggregation: unknown value 'mean'"),
        (
            "behaviour_cap",
            [0.0, -1.0],
            [None, 0.5, 2.0],
            r"^behaviour_cap: must be > 0 when set, got ",
        ),
    ],
)
def test_loss_settings_bounds(field, bad, good, match):
    for value in bad:
        full = match + re.escape(str(value)) + "$" if match.endswith("got ") else match
        with pytest.raises(ValueError, match=full):
            LossSettings(**{field: value})
    for value in good:
        assert getattr(LossSettings(**{field: value}), field) == value


def test_kl_estimate_clamps_the_log_ratio_at_20_by_default():
    """The documented default: a log-ratio of 30 counts as 20 (k1 and k2 show the bound)."""
    from rlmr.core.algo import kl_estimate

    far = torch.tensor([30.0, -30.0])
    assert kl_estimate(far, torch.zeros(2), kind="k1").tolist() == [20.0, -20.0]
    assert kl_estimate(far, torch.zeros(2), kind="k2").tolist() == [200.0, 200.0]


def test_masked_mean_along_a_dim_is_one_mean_per_row():
    from rlmr.core.algo import masked_mean

    values = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])
    mask = torch.tensor([[True, True, False], [False, False, True], [False, False, False]])
    assert masked_mean(values, mask, dim=-1).tolist() == [1.5, 6.0, 0.0]  # an empty row is 0
    assert masked_mean(values, mask).item() == 3.0


def test_a_constant_group_has_zero_advantages_even_without_eps():
    """eps = 0: a constant group's std is 0, so 0 / 0 must not leak out as NaN, whatever the
    other groups look like; the others are still normalised."""
    rewards = torch.tensor([[0.3, 0.3, 0.3, 0.3], [0.0, 1.0, 0.0, 1.0]])
    for method in ("group_norm", "dr_grpo", "rloo"):
        adv = group_advantages(rewards, method=method, eps=0.0)
        assert adv[0].tolist() == [0.0, 0.0, 0.0, 0.0], method
        assert torch.isfinite(adv).all() and adv[1].abs().min() > 0, method


def test_entropy_in_chunks_equals_the_whole_computation(monkeypatch):
    import rlmr.config.memory as memory

    torch.manual_seed(0)
    logits = torch.randn(3, 7, 11) * 3
    logp = torch.log_softmax(logits, dim=-1)
    whole = -(logp.exp() * logp).sum(dim=-1)
    for chunk in (1, 2, 5, 21, 1000):  # chunks that split rows unevenly, and one chunk for all
        monkeypatch.setattr(memory, "ENTROPY_CHUNK_TOKENS", chunk)
        assert torch.allclose(entropy_from_logits(logits), whole, atol=1e-6)
    assert entropy_from_logits(torch.zeros(0, 4, 11)).shape == (0, 4)


# ----------------------------------------------------------------- behaviour correction (async)


def _behaviour_case():
    torch.manual_seed(3)
    logp = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    prox = logp.detach() + 0.05 * torch.randn(3, 5, dtype=torch.float64)
    # Behaviour log-probs: some tokens far more likely now (ratio above the cap), some less.
    behaviour = prox - torch.tensor([[1.0, -0.5, 0.2, 2.0, 0.0]] * 3, dtype=torch.float64)
    adv = torch.tensor([1.0, -0.7, 0.4], dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    return logp, prox, behaviour, adv, mask


def test_behaviour_weight_is_the_truncated_ratio_and_scales_each_tokens_loss():
    logp, prox, behaviour, adv, mask = _behaviour_case()
    cap = 1.5
    out = policy_loss(
        logp, prox, adv, mask, LossSettings(behaviour_cap=cap), logp_behaviour=behaviour
    )
    w = torch.exp(prox - behaviour).clamp(max=cap)
    ratio = torch.exp(logp - prox)
    a = adv[:, None].expand_as(logp)
    per_token = -torch.minimum(ratio * a, ratio.clamp(0.8, 1.28) * a)
    m = mask.bool()
    expected = (w * per_token)[m].sum() / m.sum()
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-12)
    (grad,) = torch.autograd.grad(out.loss, logp)
    logp2 = logp.detach().clone().requires_grad_(True)
    base = policy_loss(logp2, prox, adv, mask)
    (base_grad,) = torch.autograd.grad(base.loss, logp2)
    # w carries no gradient: each token's gradient is its weight times the uncorrected one.
    assert torch.allclose(grad, w * base_grad * m, atol=1e-12)
    raw = torch.exp(prox - behaviour)[m]
    assert out.behaviour_weight_mean == pytest.approx(float(w[m].mean()), rel=1e-12)
    assert out.behaviour_weight_max == pytest.approx(cap)
    assert out.behaviour_truncated_frac == pytest.approx(float((raw > cap).float().mean()))
    assert 0 < out.behaviour_truncated_frac < 1


def test_with_equal_behaviour_and_proximal_log_probs_the_correction_changes_nothing():
    logp, prox, _, adv, mask = _behaviour_case()
    plain = policy_loss(logp, prox, adv, mask)
    corrected = policy_loss(
        logp, prox, adv, mask, LossSettings(behaviour_cap=2.0), logp_behaviour=prox.clone()
    )
    assert corrected.loss.item() == plain.loss.item()
    assert corrected.behaviour_weight_mean == 1.0 and corrected.behaviour_truncated_frac == 0.0
    assert plain.behaviour_weight_mean == 1.0 and plain.behaviour_weight_max == 1.0


def test_behaviour_weights_ignore_tokens_off_the_mask_and_name_missing_inputs():
    _, prox, behaviour, _, mask = _behaviour_case()
    behaviour = behaviour.clone()
    behaviour[0, 4] = float("nan")  # a padding placeholder: off the mask
    w, stats = behaviour_weights(prox, behaviour, mask, cap=3.0)
    assert w[0, 4] == 0 and bool(torch.isfinite(w).all())
    assert stats["behaviour_weight_max"] == pytest.approx(3.0)
    behaviour[0, 0] = float("nan")  # on the mask: refused
    with pytest.raises(ValueError, match="^logp_behaviour: contains 1 NaN"):
        behaviour_weights(prox, behaviour, mask, cap=3.0)
    with pytest.raises(ValueError, match="^logp_behaviour: required when behaviour_cap is set"):
        policy_loss(prox, prox, torch.ones(3), mask, LossSettings(behaviour_cap=2.0))
    with pytest.raises(ValueError, match="^logp_old and logp_behaviour must have the same shape"):
        behaviour_weights(prox, behaviour[:, :3], mask, cap=3.0)

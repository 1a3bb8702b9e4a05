"""GRPO maths: advantage estimators, KL estimators and the clipped token-level loss."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rlmr.core.algo import (
    LossSettings,
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

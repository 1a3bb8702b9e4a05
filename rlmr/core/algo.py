"""GRPO maths: group advantages, KL estimators and the token-level clipped policy loss.

Definitions follow `docs/ALGORITHMS.md` section 1. Everything here is pure torch on
tensors, with no Ray, vLLM or DeepSpeed, so the learner, the driver and the
tests share one implementation. Group statistics are computed in float64 and
scale-normalised per group, so scores anywhere from 1e-8 to 1e8 keep the sign
and order guarantees the dynamic reward mixing relies on.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rlmr.core.checks import (
    as_float_tensor,
    check_choice,
    check_finite,
    check_groups,
    check_same_shape,
)

ADVANTAGE_METHODS = ("group_norm", "dr_grpo", "rloo")
KL_ESTIMATORS = ("k1", "k2", "k3")
LOSS_AGGREGATIONS = ("token_mean", "seq_mean_token_mean")


def group_advantages(rewards, method: str = "group_norm", eps: float = 1e-6) -> torch.Tensor:
    """Per-response advantages for rewards shaped `[groups, n]`.

    - `group_norm` (GRPO): `(r - mean) / (std + eps)`, std with Bessel's correction
      as in OpenRLHF and TRL.
    - `dr_grpo` (Dr. GRPO): `r - mean`, no std division.
    - `rloo`: `r_i - mean_{j != i} r_j`.

    A group whose rewards are all equal gets exactly zero advantages (no
    floating-point residue), as does any group of a single response. The result
    has the dtype of `rewards`.
    """
    r = as_float_tensor("rewards", rewards)
    check_groups("rewards", r)
    check_finite("rewards", r)
    check_choice("method", method, ADVANTAGE_METHODS)
    if not eps >= 0:
        raise ValueError(f"eps: must be >= 0, got {eps}")

    x = r.to(torch.float64)
    n = x.shape[1]
    # Scale-normalise each group so that sums of huge scores cannot overflow and
    # tiny ones keep their relative precision.
    scale = x.abs().amax(dim=1, keepdim=True).clamp_min(torch.finfo(torch.float64).tiny)
    xs = x / scale
    centred = (xs - xs.mean(dim=1, keepdim=True)) * scale
    if method == "group_norm":
        if n > 1:
            std = xs.std(dim=1, keepdim=True) * scale  # Bessel's correction: torch's default
        else:
            std = torch.zeros_like(scale)
        adv = centred / (std + eps)
    elif method == "dr_grpo":
        adv = centred
    else:  # rloo
        adv = centred * (n / (n - 1)) if n > 1 else torch.zeros_like(centred)
    constant = (x == x[:, :1]).all(dim=1, keepdim=True)
    adv = torch.where(constant, torch.zeros_like(adv), adv)
    return adv.to(r.dtype)


def zero_std_mask(rewards) -> torch.Tensor:
    """Bool `[groups]`: True where every response of the group has the same reward.

    Such groups give no gradient; the driver counts them (`frac_zero_std`) and,
    with dynamic sampling, replaces them with fresh prompts.
    """
    r = as_float_tensor("rewards", rewards)
    check_groups("rewards", r)
    check_finite("rewards", r)
    return (r == r[:, :1]).all(dim=1)


def _log_ratio(logp: torch.Tensor, logp_ref: torch.Tensor, clamp: float) -> torch.Tensor:
    return (logp_ref - logp).clamp(-clamp, clamp)


def kl_estimate(logp, logp_ref, kind: str = "k3", clamp: float = 20.0) -> torch.Tensor:
    """Per-token estimate of KL(policy || reference) from sampled tokens' log-probs.

    `k1 = logp - logp_ref`; `k2 = (logp - logp_ref)^2 / 2`;
    `k3 = exp(logp_ref - logp) - (logp_ref - logp) - 1` (Schulman's unbiased,
    non-negative estimator). The log-ratio is clamped to `[-clamp, clamp]` so
    `exp` cannot overflow; the result is always finite.
    """
    logp = as_float_tensor("logp", logp)
    logp_ref = as_float_tensor("logp_ref", logp_ref)
    check_same_shape(("logp", "logp_ref"), logp, logp_ref)
    check_finite("logp", logp)
    check_finite("logp_ref", logp_ref)
    check_choice("kind", kind, KL_ESTIMATORS)
    if not clamp > 0:
        raise ValueError(f"clamp: must be > 0, got {clamp}")
    log_ratio = _log_ratio(logp, logp_ref, clamp)  # log(p_ref / p)
    if kind == "k1":
        return -log_ratio
    if kind == "k2":
        return 0.5 * log_ratio.square()
    return torch.expm1(log_ratio) - log_ratio


def masked_mean(values: torch.Tensor, mask: torch.Tensor, dim=None) -> torch.Tensor:
    """Mean of `values` where `mask` is set; 0 where the mask is empty (never NaN)."""
    mask = mask.to(values.dtype)
    total = (values * mask).sum(dim=dim)
    count = mask.sum(dim=dim)
    return total / count.clamp_min(1.0)


def sequence_kl(logp, logp_ref, mask, kind: str = "k1", clamp: float = 20.0) -> torch.Tensor:
    """Sum over response tokens of the per-token KL estimate: shape `[batch]`.

    Used for the KL-in-reward variant: `r_i <- r_i - beta * sequence_kl_i`.
    """
    kl = kl_estimate(logp, logp_ref, kind=kind, clamp=clamp)
    mask = _as_mask(mask, kl.shape)
    return kl.masked_fill(~mask, 0.0).sum(dim=-1)  # `_as_mask` gives a bool mask


def _as_mask(mask, shape) -> torch.Tensor:
    m = torch.as_tensor(mask)
    if m.shape != shape:
        raise ValueError(f"mask: expected shape {tuple(shape)}, got {tuple(m.shape)}")
    if m.dtype != torch.bool:
        if m.is_floating_point() and not bool(((m == 0) | (m == 1)).all()):
            raise ValueError("mask: values must be 0 or 1")
        m = m != 0
    return m


@dataclass(frozen=True)
class LossSettings:
    """The hyper-parameters of `policy_loss`, checked once when made (not on every micro-batch).

    `clip_low`/`clip_high`: the ratio is clipped to `[1 - clip_low, 1 + clip_high]`
    (clip-higher when `clip_high > clip_low`); `dual_clip = c > 1` also bounds
    negative-advantage tokens by `-c * A`; `kl_coef * kl_estimator` is added per
    token when `kl_coef > 0` (KL in the loss); log-ratios are clamped to
    `+-log_ratio_clamp`; `aggregation` is `token_mean` or `seq_mean_token_mean`;
    `behaviour_cap = C` weights each token by the truncated behaviour ratio
    `min(exp(logp_old - logp_behaviour), C)` (asynchronous rollout, docs/ALGORITHMS.md section 5).
    """

    clip_low: float = 0.2
    clip_high: float = 0.28
    dual_clip: float | None = None
    kl_coef: float = 0.0
    kl_estimator: str = "k3"
    log_ratio_clamp: float = 20.0
    aggregation: str = "token_mean"
    behaviour_cap: float | None = None

    def __post_init__(self):
        if not (0 <= self.clip_low < 1):
            raise ValueError(f"clip_low: must be in [0, 1), got {self.clip_low}")
        if not self.clip_high >= 0:
            raise ValueError(f"clip_high: must be >= 0, got {self.clip_high}")
        if self.dual_clip is not None and not self.dual_clip > 1:
            raise ValueError(f"dual_clip: must be > 1 when set, got {self.dual_clip}")
        if not self.kl_coef >= 0:
            raise ValueError(f"kl_coef: must be >= 0, got {self.kl_coef}")
        if not self.log_ratio_clamp > 0:
            raise ValueError(f"log_ratio_clamp: must be > 0, got {self.log_ratio_clamp}")
        if self.behaviour_cap is not None and not self.behaviour_cap > 0:
            raise ValueError(f"behaviour_cap: must be > 0 when set, got {self.behaviour_cap}")
        check_choice("kl_estimator", self.kl_estimator, KL_ESTIMATORS)
        check_choice("aggregation", self.aggregation, LOSS_AGGREGATIONS)


BEHAVIOUR_STATS = ("behaviour_weight_mean", "behaviour_weight_max", "behaviour_truncated_frac")


@dataclass(frozen=True)
class PolicyLossOutput:
    """The scalar loss to back-propagate and detached statistics for logging."""

    loss: torch.Tensor
    pg_loss: float
    kl: float
    clip_frac: float
    ratio_mean: float
    approx_kl_old: float
    tokens: int
    # The behaviour correction (all 1 / 0 without `behaviour_cap`): mean and max of w_t over the
    # response tokens, and the share of them truncated at the cap.
    behaviour_weight_mean: float = 1.0
    behaviour_weight_max: float = 1.0
    behaviour_truncated_frac: float = 0.0


def policy_loss(
    logp,
    logp_old,
    advantages,
    mask,
    settings: LossSettings = LossSettings(),
    *,
    logp_ref=None,
    normalizer: float | None = None,
    logp_behaviour=None,
) -> PolicyLossOutput:
    """Token-level clipped surrogate loss (PPO/GRPO with clip-higher), to be minimised.

    Shapes: `logp`, `logp_old`, `mask` are `[batch, T]` (log-probs of the sampled
    tokens; `mask` marks response tokens); `advantages` is `[batch]` (one per
    sequence, broadcast over its tokens) or `[batch, T]`.

    Per token: `-min(rho * A, clip(rho, 1 - clip_low, 1 + clip_high) * A)` with
    `rho = exp(logp - logp_old)`, bounded by `-dual_clip * A` for negative `A`
    when set; `kl_coef * KL` is added per token when `kl_coef > 0` (`logp_ref`
    required). `token_mean` averages over every response token of the batch
    (DAPO / Dr. GRPO); `seq_mean_token_mean` averages per sequence first
    (original GRPO). Log-ratios are clamped, so the loss is finite even for
    wildly off-policy tokens.

    `normalizer` replaces the local denominator (token count, or sequence count
    for `seq_mean_token_mean`) with a global one, so that micro-batches summed
    by gradient accumulation and ranks averaged by data parallelism give the
    exact token mean of the whole mini-batch.

    With `settings.behaviour_cap = C`, `logp_old` is the proximal policy (the learner's weights at
    the start of the update) and `logp_behaviour` the log-probs the rollout engine sampled with;
    each token's loss is multiplied by `w = min(exp(logp_old - logp_behaviour), C)`, which carries
    no gradient: the trust region stays around the proximal policy, `w` corrects for sampling from
    an older (or lower-precision) policy.
    """
    s = settings
    logp = as_float_tensor("logp", logp)
    logp_old = as_float_tensor("logp_old", logp_old)
    check_same_shape(("logp", "logp_old"), logp, logp_old)
    if logp.dim() != 2:
        raise ValueError(f"logp: expected shape [batch, T], got {tuple(logp.shape)}")
    adv = as_float_tensor("advantages", advantages)
    if adv.shape == logp.shape[:1]:
        adv = adv.unsqueeze(-1).expand_as(logp)
    elif adv.shape != logp.shape:
        raise ValueError(
            f"advantages: expected shape {tuple(logp.shape[:1])} or {tuple(logp.shape)}, "
            f"got {tuple(adv.shape)}"
        )
    m = _as_mask(mask, logp.shape)
    for name, t in (("logp", logp), ("logp_old", logp_old), ("advantages", adv)):
        check_finite(name, t)
    if normalizer is not None and not normalizer > 0:
        raise ValueError(f"normalizer: must be > 0 when set, got {normalizer}")

    log_ratio = (logp - logp_old).clamp(-s.log_ratio_clamp, s.log_ratio_clamp)
    ratio = torch.exp(log_ratio)
    unclipped = ratio * adv
    clipped = ratio.clamp(1.0 - s.clip_low, 1.0 + s.clip_high) * adv
    per_token = -torch.minimum(unclipped, clipped)
    if s.dual_clip is not None:
        per_token = torch.where(adv < 0, torch.minimum(per_token, -s.dual_clip * adv), per_token)
    weight_stats = {}
    if s.behaviour_cap is not None:
        weight, weight_stats = behaviour_weights(
            logp_old, logp_behaviour, m, s.behaviour_cap, s.log_ratio_clamp
        )
        per_token = weight * per_token

    kl_tok = torch.zeros_like(per_token)
    if s.kl_coef > 0:
        if logp_ref is None:
            raise ValueError("logp_ref: required when kl_coef > 0")
        kl_tok = kl_estimate(logp, logp_ref, kind=s.kl_estimator, clamp=s.log_ratio_clamp)

    total = per_token + s.kl_coef * kl_tok
    fm = m.to(total.dtype)
    if s.aggregation == "token_mean":
        denom = fm.sum().clamp_min(1.0) if normalizer is None else normalizer
        loss = (total * fm).sum() / denom
    else:
        per_seq = (total * fm).sum(-1) / fm.sum(-1).clamp_min(1.0)
        has_tokens = m.any(-1)
        denom = has_tokens.sum().clamp_min(1) if normalizer is None else normalizer
        loss = per_seq[has_tokens].sum() / denom

    with torch.no_grad():
        was_clipped = (clipped < unclipped) & m  # the clipped branch was the binding one
        tokens = int(m.sum())
        denom = max(tokens, 1)
        stats = dict(
            pg_loss=float((per_token * fm).sum() / denom),
            kl=float((kl_tok * fm).sum() / denom),
            clip_frac=float(was_clipped.sum()) / denom,
            ratio_mean=float((ratio * fm).sum() / denom),
            # k3 estimate of KL(old || new): how far the update moved the policy.
            approx_kl_old=float(((torch.expm1(-log_ratio) + log_ratio) * fm).sum() / denom),
        )
    return PolicyLossOutput(loss=loss, tokens=tokens, **stats, **weight_stats)


def behaviour_weights(
    logp_prox, logp_behaviour, mask, cap: float, log_ratio_clamp: float = 20.0
) -> tuple[torch.Tensor, dict]:
    """Truncated importance weights `w = min(exp(logp_prox - logp_behaviour), cap)` per token
    (no gradient; 0 off the mask) and their statistics over the masked tokens."""
    if logp_behaviour is None:
        raise ValueError("logp_behaviour: required when behaviour_cap is set")
    logp_behaviour = as_float_tensor("logp_behaviour", logp_behaviour)
    check_same_shape(("logp_old", "logp_behaviour"), logp_prox, logp_behaviour)
    m = _as_mask(mask, logp_prox.shape)
    with torch.no_grad():
        log_w = (logp_prox.detach() - logp_behaviour).clamp(-log_ratio_clamp, log_ratio_clamp)
        # Off the mask (padding, prompt) the behaviour log-probs are placeholders: weight 0.
        raw = torch.where(m, torch.exp(log_w), torch.zeros_like(log_w))
        check_finite("logp_behaviour", raw)
        weight = raw.clamp(max=cap)
        tokens = max(int(m.sum()), 1)
        stats = dict(
            behaviour_weight_mean=float(weight[m].sum()) / tokens,
            behaviour_weight_max=float(weight[m].max()) if bool(m.any()) else 1.0,
            behaviour_truncated_frac=float((raw[m] > cap).sum()) / tokens,
        )
    return weight, stats


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Per-position entropy (nats) of the categorical distribution given by `logits[..., V]`.

    Taken `ENTROPY_CHUNK_TOKENS` positions at a time: the three fp32 `[positions, V]` temporaries
    would otherwise outweigh the logits themselves (152k vocabulary). `rlmr.config.memory` budgets
    one chunk.
    """
    from rlmr.config.memory import ENTROPY_CHUNK_TOKENS

    flat = logits.reshape(-1, logits.shape[-1])  # [positions, V]; an empty batch is one empty chunk
    parts = []
    for rows in flat.split(ENTROPY_CHUNK_TOKENS):
        logp = torch.log_softmax(rows.float(), dim=1)
        parts.append(-(logp.exp() * logp).sum(dim=1))
    return torch.cat(parts).reshape(logits.shape[:-1])

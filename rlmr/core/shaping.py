"""Entropy-based reward shaping for training the GenRM judge itself (RLCS, `docs/ALGORITHMS.md`
section 4).

A sampled judgment `k` of a labelled preference pair earns `+1` when its
verdict matches the label and `-1` otherwise. Shaping reweights that by the
binary entropy `H_k` (base 2, in [0, 1]) of the judgment's verdict distribution:

    correct:  R'_k = +(b + (1 - b) * H_k)        # uncertain-correct weighs most
    wrong:    R'_k = -(b + (1 - b) * (1 - H_k))  # confident-wrong weighs most

so that for any floor `0 < b < 1`:
uncertain-correct > confident-correct > 0 > uncertain-wrong > confident-wrong.
`b = 1` switches shaping off (plain +-1).
"""

from __future__ import annotations

import torch

from rlmr.core.checks import as_float_tensor, check_finite, check_same_shape


def binary_entropy(p, name: str = "p") -> torch.Tensor:
    """Entropy in bits of a Bernoulli(p); exactly 0 at p = 0 or 1, 1 at p = 0.5."""
    p = as_float_tensor(name, p)
    check_finite(name, p)
    if bool(((p < 0) | (p > 1)).any()):
        raise ValueError(f"{name}: probabilities must lie in [0, 1]")
    x = p.to(torch.float64)
    h = -(torch.xlogy(x, x) + torch.xlogy(1 - x, 1 - x)) / torch.log(
        torch.tensor(2.0, dtype=torch.float64)
    )
    return h.clamp(max=1.0).to(p.dtype)  # both xlogy terms are <= 0, so h >= 0 already


def vote_entropy(verdicts) -> torch.Tensor:
    """Entropy source `votes`: binary entropy of the split of verdicts within each group.

    `verdicts` is bool `[groups, k]` (True = the first response was preferred);
    returns `[groups, k]`, every judgment of a group sharing its group's entropy.
    """
    v = torch.as_tensor(verdicts)  # a tensor is returned as it is
    if v.dtype != torch.bool or v.dim() != 2:
        raise ValueError(
            f"verdicts: expected a bool tensor shaped [groups, k], got {v.dtype} {tuple(v.shape)}"
        )
    share = v.to(torch.float64).mean(dim=1, keepdim=True)
    return binary_entropy(share).expand(v.shape).to(torch.get_default_dtype())


def entropy_shaped_rewards(correct, p_verdict, floor: float = 0.5, valid=None) -> torch.Tensor:
    """Shaped GRPO rewards for judgments: `correct` (bool) and `p_verdict`, any matching shape.

    `p_verdict` is the probability the judgment gave to the verdict it chose (its
    entropy is the same whichever side is read, so `P(X)` works as well). With
    `valid` (bool, same shape) a judgment that produced no verdict gets `-1`.
    """
    c = torch.as_tensor(correct)
    if c.dtype != torch.bool:
        raise ValueError(f"correct: expected a bool tensor, got dtype {c.dtype}")
    p = as_float_tensor("p_verdict", p_verdict)
    check_same_shape(("correct", "p_verdict"), c, p)
    if not (0.0 <= floor <= 1.0):
        raise ValueError(f"floor: must lie in [0, 1], got {floor}")
    h = binary_entropy(p, "p_verdict").to(torch.float64)
    reward = torch.where(c, floor + (1 - floor) * h, -(floor + (1 - floor) * (1 - h)))
    if valid is not None:
        ok = torch.as_tensor(valid)
        if ok.dtype != torch.bool:
            raise ValueError(f"valid: expected a bool tensor, got dtype {ok.dtype}")
        check_same_shape(("correct", "valid"), c, ok)
        reward = torch.where(ok, reward, torch.full_like(reward, -1.0))
    return reward.to(p.dtype)

"""Mixing the writing reward with the constraint verifier's verdicts (RLMR, `docs/ALGORITHMS.md`
section 2).

`mix_rewards(writing, passed)` turns per-response writing scores `w` and
pass/fail flags `c` into GRPO rewards. The default `dynamic` strategy applies
the smallest per-group penalty `delta` that puts every violator strictly below
its group's mean reward:

    r_i   = w_i - delta * (1 - c_i)
    delta = max(0, max_{j violates} (n * w_j - S) / (n - k)) + margin_abs

with `k` violators, `S = sum(w)`. A violator then has a negative advantage
under every estimator in `rlmr.core.algo`, the order of `w` is kept among
compliant and among violating responses, and a group that fully passes keeps
`r = w` exactly. `margin_abs = margin * max(spread(w), 1e-3 * max|w|, 1e-8)`:
proportional to the group's writing spread, with a floor relative to the
scores' magnitude so the inequality survives floating point and float32.
"""

from __future__ import annotations

import torch

from rlmr.core.checks import (
    as_float_tensor,
    check_choice,
    check_finite,
    check_groups,
    check_same_shape,
)

STRATEGIES = ("dynamic", "writing_only", "verifier_only", "fixed")
ALL_VIOLATE = ("zero", "writing", "fraction")
DEFAULT_MARGIN = 0.1
_REL_FLOOR = 1e-3
_ABS_FLOOR = 1e-8


def mix_rewards(
    writing,
    passed,
    strategy: str = "dynamic",
    all_violate: str = "zero",
    fixed_weight: float = 1.0,
    margin: float = DEFAULT_MARGIN,
    passed_fraction=None,
) -> torch.Tensor:
    """Rewards `[groups, n]` from writing scores `[groups, n]` and bool `passed` `[groups, n]`.

    Strategies: `dynamic` (RLMR), `writing_only` (`r = w`), `verifier_only`
    (`r = c`), `fixed` (`r = w + fixed_weight * c`). For `dynamic`, a group in
    which every response violates is handled by `all_violate`: `zero` (constant
    rewards, so no gradient from it), `writing` (`r = w`) or `fraction`
    (`r = passed_fraction`, the share of the prompt's constraints each response
    met). The result has the dtype of `writing`.
    """
    w = as_float_tensor("writing", writing)
    check_groups("writing", w)
    check_finite("writing", w)
    if w.dtype in (torch.float16, torch.bfloat16):
        raise ValueError(
            f"writing: dtype {w.dtype} cannot hold the penalty margin exactly; "
            "pass float32 or float64"
        )
    c = passed if isinstance(passed, torch.Tensor) else torch.as_tensor(passed)
    if c.dtype != torch.bool:
        raise ValueError(f"passed: expected a bool tensor, got dtype {c.dtype}")
    check_same_shape(("writing", "passed"), w, c)
    check_choice("strategy", strategy, STRATEGIES)
    check_choice("all_violate", all_violate, ALL_VIOLATE)
    if not margin > 0 or margin != margin or margin == float("inf"):
        raise ValueError(f"margin: must be a finite number > 0, got {margin}")
    if not (fixed_weight == fixed_weight and abs(fixed_weight) != float("inf")):
        raise ValueError(f"fixed_weight: must be finite, got {fixed_weight}")
    frac = None
    if passed_fraction is not None:
        frac = as_float_tensor("passed_fraction", passed_fraction)
        check_same_shape(("writing", "passed_fraction"), w, frac)
        check_finite("passed_fraction", frac)
        if bool(((frac < 0) | (frac > 1)).any()):
            raise ValueError("passed_fraction: values must lie in [0, 1]")
        if bool((c & (frac != 1)).any()):
            raise ValueError(
                "passed_fraction: a response that passed must have passed_fraction == 1"
            )

    if strategy == "writing_only":
        return w.clone()
    if strategy == "verifier_only":
        return c.to(w.dtype)
    if strategy == "fixed":
        return (w.to(torch.float64) + fixed_weight * c.to(torch.float64)).to(w.dtype)
    return _dynamic(w, c, all_violate, margin, frac)


def _dynamic(
    w: torch.Tensor, c: torch.Tensor, all_violate: str, margin: float, frac
) -> torch.Tensor:
    x = w.to(torch.float64)
    n = x.shape[1]
    violates = ~c
    k = violates.sum(dim=1, keepdim=True).to(torch.float64)
    # Work in units of the group's magnitude so n * w_j - S cannot overflow.
    scale = x.abs().amax(dim=1, keepdim=True).clamp_min(torch.finfo(torch.float64).tiny)
    xs = x / scale
    spread = xs.amax(dim=1, keepdim=True) - xs.amin(dim=1, keepdim=True)
    unit = torch.maximum(spread, torch.full_like(spread, _REL_FLOOR))
    unit = torch.maximum(unit, _ABS_FLOOR / scale)
    s = xs.sum(dim=1, keepdim=True)
    need = (n * xs - s) / (n - k).clamp_min(1.0)
    need = torch.where(violates, need, torch.full_like(need, -torch.inf)).amax(dim=1, keepdim=True)
    delta = need.clamp_min(0.0) + margin * unit
    mixed = ((xs - delta * violates.to(torch.float64)) * scale).to(w.dtype)
    mixed = torch.where(c, w, mixed)  # compliant responses keep their score bit for bit

    some_pass = c.any(dim=1, keepdim=True)
    all_pass = c.all(dim=1, keepdim=True)
    out = torch.where(all_pass, w, mixed)  # all pass: r = w, bit for bit
    if all_violate == "zero":
        fallback = torch.zeros_like(w)
    elif all_violate == "writing":
        fallback = w
    else:
        if frac is None:
            raise ValueError('passed_fraction: required when all_violate="fraction"')
        fallback = frac.to(w.dtype)
    return torch.where(some_pass, out, fallback)

"""Input checks shared by the algorithm core.

Every public function of `rlmr.core.algo`, `rlmr.core.rewards` and `rlmr.core.shaping` refuses
non-finite input with a `ValueError` that names the argument, instead of letting
a NaN flow into a gradient where it would be found hours later.
"""

from __future__ import annotations

import torch


def as_float_tensor(name: str, value) -> torch.Tensor:
    """Return `value` as a floating tensor; reject anything else with a clear message."""
    t = value if isinstance(value, torch.Tensor) else torch.as_tensor(value)
    if t.dtype == torch.bool or t.is_complex():
        raise ValueError(f"{name}: expected a real-valued tensor, got dtype {t.dtype}")
    if not t.is_floating_point():
        t = t.to(torch.get_default_dtype())
    return t


def check_finite(name: str, t: torch.Tensor) -> None:
    """Raise ValueError naming `name` if `t` holds NaN or +-inf."""
    if t.is_floating_point() and not bool(torch.isfinite(t).all()):
        n_nan = int(torch.isnan(t).sum())
        n_inf = int(torch.isinf(t).sum())
        raise ValueError(
            f"{name}: contains {n_nan} NaN and {n_inf} inf value(s); all values must be finite"
        )


def check_groups(name: str, t: torch.Tensor) -> None:
    """Require a `[groups, n]` tensor with at least one response per group."""
    if t.dim() != 2:
        raise ValueError(f"{name}: expected shape [groups, n], got {tuple(t.shape)}")
    if t.shape[1] < 1:
        raise ValueError(f"{name}: groups must hold at least one response, got n={t.shape[1]}")


def check_same_shape(names: tuple[str, str], a: torch.Tensor, b: torch.Tensor) -> None:
    if a.shape != b.shape:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same shape, "
            f"got {tuple(a.shape)} and {tuple(b.shape)}"
        )


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name}: unknown value {value!r}; expected one of {', '.join(choices)}")

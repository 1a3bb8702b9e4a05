"""Group scoring strategies (`docs/ALGORITHMS.md` section 3): which pairs to judge, and how verdicts
become `w`.

Pure functions, no model: `plan_pairs(strategy, n)` lists the comparisons
`(a, b)` a group of `n` responses needs (`REFERENCE` = -1 stands for the
reference response stored with the prompt), and `writing_scores(strategy, n,
judgments)` turns their combined `P(a > b)` into per-response scores in [0, 1].

- `pivot` (default): response `pivot` is compared with every other one;
  `w_i = P(i > pivot)`, `w_pivot = 0.5`. `n - 1` comparisons.
- `round_robin`: every pair; `w_i` = mean win probability. `n(n-1)/2` comparisons.
- `reference`: every response against the reference; `w_i = P(i > reference)`.
- `pointwise`: no pairs; `w_i = (E[score_i] - 1) / 9` (see `rlmr.judge.verdict`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import combinations

STRATEGIES = ("pivot", "round_robin", "reference", "pointwise")
REFERENCE = -1


def check_strategy(strategy: str) -> None:
    if strategy not in STRATEGIES:
        raise ValueError(
            f"group_strategy: unknown value {strategy!r}; expected one of {', '.join(STRATEGIES)}"
        )


def plan_pairs(strategy: str, n: int, pivot: int = 0) -> list[tuple[int, int]]:
    """The comparisons `(a, b)` to judge for a group of `n` responses."""
    check_strategy(strategy)
    if n < 1:
        raise ValueError(f"n: a group needs at least one response, got {n}")
    if strategy == "pivot":
        if not 0 <= pivot < n:
            raise ValueError(f"pivot: index {pivot} is outside a group of {n}")
        return [(i, pivot) for i in range(n) if i != pivot]
    if strategy == "round_robin":
        return list(combinations(range(n), 2))
    if strategy == "reference":
        return [(i, REFERENCE) for i in range(n)]
    return []


def writing_scores(
    strategy: str, n: int, p_win: Mapping[tuple[int, int], float], pivot: int = 0
) -> list[float]:
    """Per-response scores in [0, 1] from `p_win[(a, b)] = P(a > b)` for the planned pairs."""
    check_strategy(strategy)
    if strategy == "pointwise":
        raise ValueError("pointwise scores come from ratings, use pointwise_scores()")
    needed = plan_pairs(strategy, n, pivot)
    missing = [pair for pair in needed if pair not in p_win]
    if missing:
        raise ValueError(f"{strategy}: missing judgments for pairs {missing[:5]}")
    if strategy == "pivot":
        return [0.5 if i == pivot else _unit(p_win[(i, pivot)]) for i in range(n)]
    if strategy == "reference":
        return [_unit(p_win[(i, REFERENCE)]) for i in range(n)]
    if n == 1:
        return [0.5]
    wins = [0.0] * n
    for a, b in needed:
        p = _unit(p_win[(a, b)])
        wins[a] += p
        wins[b] += 1.0 - p
    return [w / (n - 1) for w in wins]


def pointwise_scores(expected: Sequence[float]) -> list[float]:
    """Expected rubric scores in [1, 10] mapped linearly onto [0, 1]."""
    return [_unit((s - 1.0) / 9.0) for s in expected]


def response_entropies(
    n: int, pairs: Sequence[tuple[int, int]], entropies: Sequence[float]
) -> list[float]:
    """Mean entropy of the comparisons each response took part in (0 when it took part in none)."""
    total, count = [0.0] * n, [0] * n
    for (a, b), h in zip(pairs, entropies):
        for i in (a, b):
            if i >= 0:
                total[i] += h
                count[i] += 1
    return [t / c if c else 0.0 for t, c in zip(total, count)]


def _unit(x: float) -> float:
    return min(max(float(x), 0.0), 1.0)

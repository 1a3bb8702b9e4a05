"""Percentile bootstrap intervals over prompts (the unit an evaluation samples)."""

from __future__ import annotations

import random
from collections.abc import Sequence

RESAMPLES = 2000


def bootstrap_ratio(
    hits: Sequence[float],
    totals: Sequence[float],
    level: float = 0.95,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> tuple[float, float, float]:
    """`sum(hits) / sum(totals)` and its percentile interval, resampling prompts with replacement.

    A prompt-level accuracy has `totals` all 1; an instruction-level one counts each prompt's
    instructions, so prompts with more instructions weigh more, as in the point estimate."""
    if len(hits) != len(totals) or not hits:
        raise ValueError(f"bootstrap: {len(hits)} hits for {len(totals)} totals (need >= 1 each)")
    if not 0 < level < 1:
        raise ValueError(f"bootstrap: level must be in (0, 1), got {level}")
    point = sum(hits) / sum(totals)
    rng = random.Random(seed)
    n = len(hits)
    stats = []
    for _ in range(resamples):
        idx = [rng.randrange(n) for _ in range(n)]
        total = sum(totals[i] for i in idx)
        stats.append(sum(hits[i] for i in idx) / total if total else point)
    stats.sort()
    lo = stats[int((1 - level) / 2 * (resamples - 1))]
    hi = stats[int((1 + level) / 2 * (resamples - 1))]
    return point, lo, hi

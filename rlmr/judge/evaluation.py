"""Evaluating a judge on labelled preference pairs: agreement, position consistency, calibration.

Pairs are `rlmr.data.pairs.PreferencePair`s (loaded with `load_pairs`). The judge
gives `p = P(chosen > rejected)` (both orders averaged with swap). Reported:
- agreement: share of pairs with `p > 0.5` (an exact tie counts one half);
- position consistency: share of pairs whose two orders pick the same winner;
- ECE: expected calibration error of the judge's confidence `max(p, 1 - p)`
  against whether its pick was right, in equal-width bins over [0.5, 1];
- first-position rate: how often the response shown first wins (0.5 = no bias);
- verdict mass: mean probability the judge put on the two label tokens.

`compare_agreement` sets two judges side by side on the same pairs (before and
after training): the paired difference with a bootstrap interval and a sign test.
"""

from __future__ import annotations

import math
import random
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from rlmr.data.pairs import PreferencePair
from rlmr.judge.types import PairJudgment


def agreement(p_chosen: Sequence[float]) -> float:
    if not p_chosen:
        return float("nan")
    return sum(_correct(p) for p in p_chosen) / len(p_chosen)


def expected_calibration_error(p_chosen: Sequence[float], bins: int = 10) -> float:
    """Top-label ECE: bins over confidence max(p, 1-p) in [0.5, 1]; |accuracy - confidence| weighted
    by bin size."""
    if not p_chosen:
        return float("nan")
    if bins < 1:
        raise ValueError(f"bins: must be >= 1, got {bins}")
    filled: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for p in p_chosen:
        conf = max(p, 1.0 - p)
        right = 1.0 if p > 0.5 else 0.5 if p == 0.5 else 0.0
        k = min(int((conf - 0.5) / 0.5 * bins), bins - 1)
        filled[k].append((conf, right))
    n = len(p_chosen)
    return sum(
        len(v) / n * abs(sum(r for _, r in v) / len(v) - sum(c for c, _ in v) / len(v))
        for v in filled.values()
    )


@dataclass
class EvaluationReport:
    pairs: int
    agreement: float
    position_consistency: float | None
    ece: float
    brier: float
    first_position_rate: float
    verdict_mass: float
    seconds: float
    by_kind: dict[str, float] = field(default_factory=dict)
    truncated: int = 0
    empty: int = 0

    def lines(self) -> list[str]:
        pc = (
            "n/a (no swap)"
            if self.position_consistency is None
            else f"{self.position_consistency:.1%}"
        )
        out = [
            f"pairs                 {self.pairs}",
            f"agreement             {self.agreement:.1%}",
            f"position consistency  {pc}",
            f"ECE                   {self.ece:.3f}",
            f"Brier score           {self.brier:.3f}",
            f"first shown wins      {self.first_position_rate:.1%}   (50% = no position bias)",
            f"verdict mass          {self.verdict_mass:.3f}   "
            "(probability on the two label tokens)",
            f"truncated responses   {self.truncated}",
            f"empty responses       {self.empty}",
            f"time                  {self.seconds:.1f} s "
            f"({self.seconds / max(self.pairs, 1):.2f} s/pair)",
        ]
        for kind, value in sorted(self.by_kind.items()):
            out.append(f"  agreement {kind:<15} {value:.1%}")
        return out


def evaluate_pairs(
    judge,
    pairs: Sequence[PreferencePair],
    *,
    batch_pairs: int = 8,
    progress: Callable[[int], None] | None = None,
) -> tuple[EvaluationReport, list[PairJudgment]]:
    """Judge every pair (chosen as `a`) in batches of `batch_pairs`; `progress(k)` after each
    batch."""
    start = time.perf_counter()
    judgments: list[PairJudgment] = []
    before = dict(judge.stats)
    for i in range(0, len(pairs), batch_pairs):
        chunk = pairs[i : i + batch_pairs]
        judgments += judge_pairs(judge, chunk)
        if progress:
            progress(len(chunk))
    report = pair_report(pairs, judgments, time.perf_counter() - start)
    report.truncated = judge.stats.get("truncated", 0) - before.get("truncated", 0)
    report.empty = judge.stats.get("empty", 0) - before.get("empty", 0)
    return report, judgments


def judge_pairs(judge, pairs: Sequence[PreferencePair]) -> list[PairJudgment]:
    """One judgment per pair, the chosen response as `a` (both orders when the judge swaps)."""
    from rlmr.judge.judge import PairQuery

    return judge.compare([PairQuery(q.prompt, q.chosen, q.rejected, q.context) for q in pairs])


def pair_report(
    pairs: Sequence[PreferencePair], judgments: Sequence[PairJudgment], seconds: float = 0.0
) -> EvaluationReport:
    """Agreement, position consistency, calibration and position bias of judgments on pairs."""
    ps = [j.p for j in judgments]
    flags = [j.consistent for j in judgments if j.consistent is not None]
    # First-position wins: forward shows chosen first, backward shows rejected first.
    firsts = [j.p_forward for j in judgments] + [
        j.p_backward for j in judgments if j.p_backward is not None
    ]
    kinds: dict[str, list[float]] = defaultdict(list)
    for q, p in zip(pairs, ps):
        if q.kind:
            kinds[q.kind].append(p)
    masses = [j.verdict_mass for j in judgments if j.decided == "judge"]
    return EvaluationReport(
        pairs=len(pairs),
        agreement=agreement(ps),
        position_consistency=(sum(flags) / len(flags)) if flags else None,
        ece=expected_calibration_error(ps),
        brier=sum((1.0 - p) ** 2 for p in ps) / max(len(ps), 1),
        first_position_rate=sum(1.0 if f > 0.5 else 0.5 if f == 0.5 else 0.0 for f in firsts)
        / max(len(firsts), 1),
        verdict_mass=sum(masses) / len(masses) if masses else float("nan"),
        seconds=seconds,
        by_kind={k: agreement(v) for k, v in kinds.items()},
    )


def _correct(p: float) -> float:
    return 1.0 if p > 0.5 else 0.5 if p == 0.5 else 0.0


@dataclass(frozen=True)
class PairedComparison:
    """Two judges on the same pairs: agreement before and after, a 95% paired bootstrap interval
    of the difference, and an exact two-sided sign test on the pairs only one judge gets right."""

    pairs: int
    before: float
    after: float
    low: float
    high: float
    better: int
    worse: int
    p_value: float

    def line(self, name: str) -> str:
        return (
            f"{name:<16}{self.before:6.1%} -> {self.after:6.1%}  "
            f"diff {self.after - self.before:+.1%} [95% CI {self.low:+.1%}, {self.high:+.1%}]  "
            f"sign test {self.better}+/{self.worse}- p={self.p_value:.3g}  (n={self.pairs})"
        )


def sign_test(better: int, worse: int) -> float:
    """Exact two-sided sign test: the chance of a split at least this uneven under p = 1/2."""
    n = better + worse
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(better, worse) + 1)) / 2**n
    return min(1.0, 2 * tail)


def compare_agreement(
    p_before: Sequence[float], p_after: Sequence[float], *, resamples: int = 10_000, seed: int = 0
) -> PairedComparison:
    """`p_before[i]`, `p_after[i]`: two judges' probabilities for the chosen side of pair i."""
    if len(p_before) != len(p_after) or not p_before:
        raise ValueError(
            f"compare_agreement: need the same non-empty pairs, got {len(p_before)} and "
            f"{len(p_after)}"
        )
    before = [_correct(p) for p in p_before]
    after = [_correct(p) for p in p_after]
    diffs = [a - b for a, b in zip(after, before)]
    n = len(diffs)
    rng = random.Random(seed)
    means = sorted(sum(diffs[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples))
    better, worse = sum(d > 0 for d in diffs), sum(d < 0 for d in diffs)
    return PairedComparison(
        pairs=n,
        before=sum(before) / n,
        after=sum(after) / n,
        low=means[int(0.025 * (resamples - 1))],
        high=means[int(0.975 * (resamples - 1))],
        better=better,
        worse=worse,
        p_value=sign_test(better, worse),
    )

"""What goes into the judge and what comes out: plain frozen dataclasses that pickle across Ray.

- `JudgeGroup`: one prompt and its group of sampled responses (plus optional
  context and a reference response for the `reference` strategy).
- `PairJudgment`: one pairwise comparison, both orders, combined.
- `PointRating`: one pointwise rubric score.
- `GroupScores`: per-response writing scores `w` in [0, 1] for one group, with
  the verdict entropies and diagnostics (position consistency, truncations).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class JudgeGroup:
    prompt: str
    responses: tuple[str, ...]
    context: str | None = None
    reference: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "responses", tuple(self.responses))
        if not self.responses:
            raise ValueError("responses: a group needs at least one response")


@dataclass(frozen=True)
class PairJudgment:
    """Judge's preference between `a` and `b` (indices in the group; -1 = the reference).

    `p_forward` = P(a wins) with a shown first; `p_backward` = P(b wins) with b
    shown first (None without swap); `p` = P(a > b) combined. `decided` is
    "judge" or the rule that decided without the model ("empty").
    """

    a: int
    b: int
    p: float
    p_forward: float
    p_backward: float | None
    entropy: float  # bits, of the combined p
    consistent: bool | None  # both orders pick the same winner (None without swap)
    verdict_mass: float  # mean P(X) + P(Y) the judge put on the two labels
    decided: str = "judge"
    analyses: tuple[str, ...] = ()


@dataclass(frozen=True)
class PointRating:
    index: int
    score: float  # expected score in [1, 10]
    distribution: tuple[float, ...]  # over scores 1..10
    entropy: float  # normalised, in [0, 1]
    verdict_mass: float
    decided: str = "judge"
    analysis: str = ""


@dataclass(frozen=True)
class GroupScores:
    """Writing scores of one group.

    `writing[i]` in [0, 1]; `entropies` one per comparison (pairwise) or per
    response (pointwise), in bits/normalised, in [0, 1]; `response_entropies[i]`
    the mean entropy of the judgments response i took part in.
    """

    writing: tuple[float, ...]
    entropies: tuple[float, ...]
    response_entropies: tuple[float, ...]
    strategy: str
    position_consistency: float | None = None  # share of comparisons consistent across orders
    truncated: int = 0  # responses cut in the middle to fit the judge's context
    empty: int = 0  # empty responses, scored without the judge
    verdict_mass: float = 1.0
    comparisons: tuple[PairJudgment, ...] = ()
    ratings: tuple[PointRating, ...] = field(default=())

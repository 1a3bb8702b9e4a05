"""The generative reward model (GenRM): a pairwise judge that reasons, then gives a verdict
probability.

`docs/ALGORITHMS.md` sections 3-4. Pure core, importable without a model:
- `prompts`: Jinja templates (`templates/`), fencing of judged text, middle truncation;
- `verdict`: label choice, verdict probability `P(X) / (P(X) + P(Y))`, swap combination, entropy;
- `strategies`: `pivot`, `round_robin`, `reference`, `pointwise` group scoring;
- `judge`: `GenerativeJudge.score_groups(groups)` on any `rlmr.engine.TextEngine`;
- `evaluation`: agreement, position consistency and calibration on preference pairs;
The command line is `rlmr.cli.judge` (`rlmr judge --pairs FILE.jsonl`); the shipped preference
set is made by `rlmr.tools.preference_pairs`.
"""

from rlmr.judge.judge import GenerativeJudge, JudgeSettings, PairQuery, RatingQuery
from rlmr.judge.types import GroupScores, JudgeGroup, PairJudgment, PointRating
from rlmr.judge.verdict import JudgeSetupError

__all__ = [
    "GenerativeJudge",
    "GroupScores",
    "JudgeGroup",
    "JudgeSettings",
    "JudgeSetupError",
    "PairJudgment",
    "PairQuery",
    "PointRating",
    "RatingQuery",
]

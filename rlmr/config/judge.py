"""The config of judge training (`task: judge`, RLCS): the judge's prompt, its reward shaping, SFT.

With `task: judge` the policy of the run is the judge: `data.train` and
`data.eval` hold labelled preference pairs (`rlmr.data.pairs`), every prompt is
the judge's pairwise prompt for one pair in one order, and every sample a
judgment, rewarded +1 / -1 for agreeing with the label and shaped by its
entropy. `rlmr sft` trains the same model on `judge.sft.data` first.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from rlmr.config.models import Strict


class ShapingConfig(Strict):
    """RLCS entropy-based shaping of the judge's +1 / -1 rewards (docs/ALGORITHMS.md section 4)."""

    floor: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="b: a correct judgment earns b + (1 - b) * H, a wrong one -(b + (1 - b) * "
        "(1 - H)); 1 turns shaping off (plain +1 / -1).",
    )
    entropy: Literal["token", "votes"] = Field(
        "token",
        description="H from the judgment's verdict-token distribution (token) or from the split "
        "of the group's verdicts (votes).",
    )


class SFTConfig(Strict):
    """The supervised cold start, `rlmr sft`: the judge learns to write distilled judgments."""

    data: str | None = Field(
        None, description="SFT rows (prompt, completion), e.g. from `rlmr genrm distill`."
    )
    epochs: float = Field(1.0, gt=0.0, le=1000.0, description="Passes over the SFT rows.")


class JudgeTaskConfig(Strict):
    """The judge being trained: how its prompts are built and how its judgments are rewarded."""

    reasoning: bool = Field(
        False, description="Judgments write an analysis before the verdict; false: verdict only."
    )
    max_analysis_tokens: int = Field(128, ge=1, le=65536, description="Analysis budget.")
    max_judge_len: int = Field(
        1024, ge=128, le=1_048_576, description="Judge prompt + analysis + verdict budget."
    )
    shaping: ShapingConfig = Field(default_factory=ShapingConfig)
    sft: SFTConfig = Field(default_factory=SFTConfig)

    @property
    def judgment_tokens(self) -> int:
        """What one sampled judgment may write: an analysis and its verdict, or the verdict."""
        return self.max_analysis_tokens + 16 if self.reasoning else 1

"""GenRMWorker: a Ray actor that owns a judge's text engine and scores whole groups of responses.

Thin shell over `rlmr.judge.GenerativeJudge`. Replicas and GPUs per replica
come from `cluster.genrm`; the engine (HF on CPU or GPU, vLLM on GPU) and the
judge settings from `reward.writing`. The judge's weights are
`reward.writing.model`, or the policy's initial weights (`model.source`) when
unset; they stay frozen during policy training.

    worker = GenRMWorker.options(num_cpus=1).remote(cfg.reward.writing, cfg.model, "cpu", seed=0)
    scores = ray.get(worker.score.remote(groups))   # list[WritingScores], one per Group
"""

from __future__ import annotations

import ray

from actors.process import releases_memory, setup_process
from rlmr.core.records import Group, WritingScores


@ray.remote
class GenRMWorker:
    def __init__(self, writing, model, device: str = "cpu", seed: int = 0):
        """`writing`: the `GenRMReward` section; `model`: the run's `ModelConfig` (fallback
        weights)."""
        from rlmr.engine import build_engine
        from rlmr.judge import GenerativeJudge, JudgeSettings

        setup_process(device)
        engine_cfg = writing.engine
        if engine_cfg.type == "hf" and engine_cfg.device == "auto":
            engine_cfg = engine_cfg.model_copy(update={"device": device})
        source = writing.model or model.source
        self.engine = build_engine(
            source, engine_cfg, dtype=writing.dtype, max_model_len=writing.max_judge_len, seed=seed
        )
        self.judge = GenerativeJudge(self.engine, JudgeSettings.from_config(writing, seed=seed))

    @releases_memory
    def score(self, groups: list[Group]) -> list[WritingScores]:
        """Writing scores for whole groups, every comparison of every group in one engine batch."""
        from rlmr.judge import JudgeGroup

        judged = self.judge.score_groups(
            [
                JudgeGroup(
                    prompt=g.row.brief(),
                    responses=tuple(g.texts),
                    context=g.row.context,
                    reference=g.row.reference,
                )
                for g in groups
            ]
        )
        return [
            WritingScores(
                scores=s.writing, entropies=s.entropies, position_consistency=s.position_consistency
            )
            for s in judged
        ]

    def info(self) -> dict:
        """Engine, model and judge settings, and the judge's running counts (prompts, truncations,
        empties)."""
        info = self.engine.info()
        return {
            "engine": info.name,
            "model": info.model,
            "device": info.device,
            "max_model_len": info.max_model_len,
            "strategy": self.judge.settings.strategy,
            "labels": (self.judge.labels.first, self.judge.labels.second),
            **self.judge.stats,
        }

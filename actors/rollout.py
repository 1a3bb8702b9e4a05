"""RolloutWorker: owns a text engine (HF on CPU, vLLM on GPU) and samples groups with log-probs."""

from __future__ import annotations

import ray

from actors.process import releases_memory, setup_process
from rlmr.config import RLMRConfig
from rlmr.core.records import Group, PromptRow
from rlmr.engine.base import SamplingParams


class RolloutCalls:
    """The rollout role's calls, on `self.engine` and `self.cfg` (a rollout worker's own engine,
    or the colocated learner's engine over its own module: `actors.colocated`)."""

    engine: object
    cfg: RLMRConfig

    def pad_token_id(self) -> int:
        tok = self.engine.tokenizer
        return tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id

    @releases_memory
    def sample(self, rows: list[PromptRow], params: SamplingParams) -> list[Group]:
        from rlmr.training.rollout import sample_groups

        return sample_groups(self.engine, rows, params, chat_template=self.cfg.model.chat_template)

    @releases_memory
    def read_judgments(self, groups: list[Group]) -> list:
        """Judge training: what each sampled judgment decided, and the label distribution there."""
        from rlmr.judge.verdict import choose_verdict_labels
        from rlmr.training.judge_task import read_judgments

        labels = choose_verdict_labels(self.engine.tokenizer)
        return read_judgments(self.engine, groups, labels, self.cfg.judge.reasoning)

    @releases_memory
    def judge_held_out(self, pairs: list) -> list:
        """Judge training: the current policy judging held-out pairs (`PairJudgment` per pair)."""
        from rlmr.training.judge_task import judge_held_out

        return judge_held_out(self.engine, pairs, self.cfg.judge)

    @releases_memory
    def sequence_logprobs(self, prompt_ids, response_ids) -> list[list[float]]:
        return self.engine.sequence_logprobs(prompt_ids, response_ids)


@ray.remote
class RolloutWorker(RolloutCalls):
    def __init__(self, cfg: RLMRConfig, device: str):
        from rlmr.engine import build_engine

        setup_process(device)
        self.cfg = cfg
        self.engine = build_engine(
            cfg.model.source,
            cfg.rollout.engine,
            dtype=cfg.model.dtype,
            max_model_len=cfg.model.max_model_len,
            seed=cfg.trainer.seed,
        )

    def load_weights(self, arrays: dict) -> int:
        """Replace the engine's weights with the learner's (CPU path: NumPy arrays through the
        object store, `rlmr.engine.weight_arrays`); returns how many tensors the engine loaded
        (it raises when it loads none)."""
        from rlmr.engine.weight_arrays import from_arrays

        return self.engine.load_weights(from_arrays(arrays))

    def tensor_parallel_size(self) -> int:
        return getattr(self.engine, "tensor_parallel_size", 1)

    def init_weight_group(
        self, master_address: str, master_port: int, rank_offset: int, world_size: int
    ) -> None:
        """GPU path: join learner rank 0's NCCL group (vLLM workers take ranks rank_offset..)."""
        self.engine.init_weight_group(master_address, master_port, rank_offset, world_size)

    def receive_weights(self, metas) -> int:
        """GPU path: receive the learner's NCCL broadcast of every parameter in `metas`."""
        return self.engine.receive_weights(metas)

"""ColocatedWorker: the one learner rank with the rollout engine, the reference model and the
constraint verifier in its process (`cluster.colocate: true`).

The rollout engine is an `HFEngine` over the learner's own module: it
generates with the weights the optimizer has just stepped, so a weight sync
moves nothing and the policy exists once (verl's hybrid engine, on one rank).
The reference model, when the KL term needs one, is loaded beside it, and the
verifier (a policy run's) checks responses here too: a Ray worker of its own
held ~110 MiB for a few milliseconds of work a step. Calls to one actor run one
after another, so the engine samples between updates, never during one.
"""

from __future__ import annotations

import ray

from actors.learner import LearnerRank
from actors.process import releases_memory
from actors.reference import ReferenceCalls
from actors.rollout import RolloutCalls
from actors.verifier import VerifierCalls, soft_engine_factory


@ray.remote
class ColocatedWorker(LearnerRank, RolloutCalls, ReferenceCalls, VerifierCalls):
    def setup(self, rank: int, master_addr: str, master_port: int) -> None:
        from rlmr.engine.factory import hf_engine_options
        from rlmr.engine.hf import HFEngine
        from rlmr.engine.loading import describe_source, load_tokenizer

        super().setup(rank, master_addr, master_port)
        cfg = self.cfg
        self.engine = HFEngine(
            self.learner.engine.module,
            load_tokenizer(cfg.model.source),
            max_model_len=cfg.model.max_model_len,
            name=describe_source(cfg.model.source),
            **hf_engine_options(cfg.rollout.engine),
        )
        if cfg.uses_reference:
            self.load_reference(cfg, self.device)
        if cfg.task == "policy":  # judge training reads its rewards off the engine: no verifier
            self.setup_verifier(cfg.reward.verifier, soft_engine_factory(cfg))

    @releases_memory
    def update(self, shard):
        # The engine's packed weight copies (half a model on SmolLM2) are dropped before the
        # update, the process's peak, and again after it: the fused optimizer writes the weights
        # without moving their version counters, and the update may have packed them anew
        # (old log-probs for several updates per step are an inference call). The heap's free
        # pages go back after the second drop, not between the update and it.
        self.engine.drop_packed_weights()
        stats = self.learner.update(shard)
        self.engine.drop_packed_weights()
        return stats

    def load(self, directory: str, remote: str | None = None) -> dict:
        client = super().load(directory, remote)
        self.engine.drop_packed_weights()
        return client

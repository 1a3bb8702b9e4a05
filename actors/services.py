"""RayServices: the driver's `Services` over Ray actors.

Builds one placement group from `rlmr.config.placement.plan_placement`, starts every
role's replicas into their bundles, and implements the driver's calls:
work is split across replicas, verification and judging run at the same
time, and weights go from learner rank 0 to every rollout engine after each
step: through the object store for HF engines (CPU), by NCCL broadcast from
learner rank 0 into the vLLM workers on GPUs (`rlmr.engine.weight_group`).
"""

from __future__ import annotations

import ray
import torch

from actors.common import chunks as _chunks
from actors.genrm import GenRMWorker
from actors.learner import LearnerGroup
from actors.placement import actor_options, create_placement_group
from actors.reference import ReferenceWorker
from actors.rollout import RolloutWorker
from actors.verifier import VerifierWorker
from rlmr.config import RLMRConfig
from rlmr.config.placement import plan_placement
from rlmr.core.records import Group, TrainBatch, Verdicts, WritingScores


def _fan_out(workers: list, method: str, items: list, *args) -> list:
    """Call `method` on each worker with its chunk of `items`; concatenate the results in order."""
    chunks = _chunks(items, len(workers))
    refs = [getattr(w, method).remote(chunk, *args) for w, chunk in zip(workers, chunks)]
    return refs


def _gather(refs: list) -> list:
    return [x for part in ray.get(refs) for x in part]


def soft_engine_factory(cfg: RLMRConfig):
    """What the verifier asks yes/no questions with, for `soft_constraints: engine`: its own HF copy of the
    judge's model, built in the verifier's process on CPU (None when soft constraints are not sent to a model)."""
    if cfg.reward.verifier.soft_constraints != "engine":
        return None
    from functools import partial

    from rlmr.config import HFEngine
    from rlmr.engine import build_engine

    writing = cfg.reward.writing
    source = writing.model or cfg.model.source
    return partial(build_engine, source, HFEngine(device="cpu", batch_size=8), dtype="float32",
                   max_model_len=writing.max_judge_len)


class RayServices:
    """Every actor of a run, placed as the cluster config says."""

    def __init__(self, cfg: RLMRConfig):
        self.cfg = cfg
        self.plan = plan_placement(cfg.cluster)
        self.pg = create_placement_group(self.plan)
        reps = self.plan.replicas

        def opts(replica):
            return actor_options(self.pg, replica)

        def device(role: str) -> str:
            return "cuda" if getattr(cfg.cluster, role).gpus > 0 else "cpu"

        self.learner = LearnerGroup(cfg, self.pg, reps["learner"], opts)
        self.rollout = [RolloutWorker.options(**opts(r)).remote(cfg, device("rollout")) for r in reps["rollout"]]
        self.verifier = [VerifierWorker.options(**opts(r)).remote(cfg.reward.verifier, soft_engine_factory(cfg))
                         for r in reps["verifier"]]
        self.genrm = []
        if cfg.reward.writing.type == "genrm":
            self.genrm = [GenRMWorker.options(**opts(r)).remote(cfg.reward.writing, cfg.model, device("genrm"),
                                                                seed=cfg.trainer.seed)
                          for r in reps.get("genrm", [])]
            if not self.genrm:
                raise ValueError("reward.writing.type is genrm but cluster.genrm.replicas is 0")
        self.reference = []
        if cfg.uses_reference:
            self.reference = [ReferenceWorker.options(**opts(r)).remote(cfg, device("reference"))
                              for r in reps.get("reference", [])]
            if not self.reference:
                raise ValueError("algo.kl.beta > 0 needs a reference model but cluster.reference.replicas is 0")
        self.pad_token_id = ray.get(self.rollout[0].pad_token_id.remote())
        # vLLM engines get weights by NCCL broadcast from learner rank 0; HF engines through the object store.
        self.nccl_sync = cfg.rollout.engine.type == "vllm"
        if self.nccl_sync:
            self._init_weight_group()
        self.sync_weights()  # rollout engines start from exactly the learner's weights

    # ------------------------------------------------------------------ Services

    def sample(self, rows, params) -> list[Group]:
        return _gather(_fan_out(self.rollout, "sample", list(rows), params))

    def score(self, groups: list[Group], judge: bool = True):
        verdict_refs = _fan_out(self.verifier, "check_groups", groups)
        score_refs = _fan_out(self.genrm, "score", groups) if judge and self.genrm else None
        verdicts: list[Verdicts] = _gather(verdict_refs)
        writing: list[WritingScores] | None = _gather(score_refs) if score_refs is not None else None
        return verdicts, writing

    def reference_logprobs(self, batch: TrainBatch) -> torch.Tensor:
        parts = _chunks(list(range(len(batch))), len(self.reference))
        refs = [w.logprobs.remote(batch.select(slice(p[0], p[-1] + 1))) for w, p in zip(self.reference, parts)]
        return torch.cat(ray.get(refs))

    def train(self, batch: TrainBatch) -> dict:
        return self.learner.train(batch)

    def _init_weight_group(self) -> None:
        tps = ray.get([w.tensor_parallel_size.remote() for w in self.rollout])
        world = 1 + sum(tps)
        addr, port = ray.get(self.learner.workers[0].address.remote())
        offsets = [1 + sum(tps[:i]) for i in range(len(tps))]
        ray.get([self.learner.workers[0].init_weight_group.remote(addr, port, world)]
                + [w.init_weight_group.remote(addr, port, off, world) for w, off in zip(self.rollout, offsets)])
        self.weight_metas = ray.get(self.learner.workers[0].weight_metas.remote())

    def sync_weights(self) -> None:
        if self.nccl_sync:
            receive = [w.receive_weights.remote(self.weight_metas) for w in self.rollout]
            sent = ray.get(self.learner.broadcast_weights_refs())[0]
            counts = ray.get(receive)
            if sent != len(self.weight_metas) or any(c != sent for c in counts):
                raise RuntimeError(f"NCCL weight sync sent {sent} tensors, engines received {counts}")
            return
        state = self.learner.export_weights_ref()
        counts = ray.get([w.load_weights.remote(state) for w in self.rollout])
        if len(set(counts)) != 1 or counts[0] == 0:
            raise RuntimeError(f"weight sync loaded {counts} tensors into the rollout engines")

    def save(self, directory: str, client_state: dict, remote: str | None = None) -> None:
        self.learner.save(directory, client_state, remote)

    def load(self, directory: str, remote: str | None = None) -> dict:
        return self.learner.load(directory, remote)

    def shutdown(self) -> None:
        from ray.util.placement_group import remove_placement_group

        for actor in [*self.learner.workers, *self.rollout, *self.verifier, *self.genrm, *self.reference]:
            ray.kill(actor, no_restart=True)
        remove_placement_group(self.pg)

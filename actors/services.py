"""RayServices: the driver's `Services` over Ray actors.

Builds one placement group from `rlmr.config.placement.plan_placement`, starts
every role's replicas into their bundles as one `ActorGroup` per role, and
implements the driver's calls: work is split across replicas, verification
and judging run at the same time, and weights go from learner rank 0 to every
rollout engine after each step: through the object store for HF engines (CPU),
by NCCL broadcast from learner rank 0 into the vLLM workers on GPUs
(`rlmr.engine.weight_group`). With `cluster.colocate` the rollout engine, the
reference and the verifier live in the learner's process (`actors.colocated`):
no weights move, and three Ray workers fewer run.
"""

from __future__ import annotations

import ray
import torch

from actors.colocated import ColocatedWorker
from actors.genrm import GenRMWorker
from actors.group import ActorFailed, ActorGroup, FaultPolicy
from actors.learner import LearnerGroup, LearnerWorker
from actors.placement import actor_options, create_placement_group, placed_plan, wait_ready
from actors.process import cpu_learner_env
from actors.reference import ReferenceWorker
from actors.rollout import RolloutWorker
from actors.verifier import VerifierWorker, soft_engine_factory
from rlmr.config import RLMRConfig
from rlmr.config.placement import plan_placement
from rlmr.core.records import Group, ScoredGroup, TokenBatch, TrainBatch


class ScoresInFlight:
    """The verifier's and the judge's calls on some groups, in flight."""

    def __init__(self, groups: list[Group], verdicts, writing=None):
        self.groups, self.verdicts, self.writing = groups, verdicts, writing

    def get(self) -> list[ScoredGroup]:
        writing = self.writing.get() if self.writing is not None else [None] * len(self.groups)
        return [ScoredGroup(g, v, w) for g, v, w in zip(self.groups, self.verdicts.get(), writing)]


class RayServices:
    """Every actor of a run, placed as the cluster config says."""

    def __init__(self, cfg: RLMRConfig):
        self.cfg = cfg
        # vLLM engines get weights by NCCL broadcast from learner rank 0; HF engines through the
        # object store.
        self.nccl_sync = cfg.rollout.engine.type == "vllm"
        plan = plan_placement(cfg.cluster)
        self.pg = create_placement_group(plan)
        self.plan = placed_plan(self.pg, plan)
        self._started: dict[str, tuple[list, list[dict]]] = {}  # role -> (actors, their options)
        world = len(self.plan.replicas["learner"])
        # Colocated: the one learner rank also holds the rollout engine (over its own weights)
        # and the reference; both roles call that actor, which is never restarted.
        self.colocated = cfg.cluster.colocate
        learner_cls = ColocatedWorker if self.colocated else LearnerWorker
        self.learner = LearnerGroup(
            self._start("learner", learner_cls, cfg, world, self._device("learner"))
        )
        if self.colocated:
            self.rollout = self._in_learner("rollout")
        else:
            self.rollout = self._start(
                "rollout",
                RolloutWorker,
                cfg,
                self._device("rollout"),
                on_restart=self._restarted_rollout,
            )
        # Judge training reads its rewards off the rollout engines: no verifier, no other judge.
        policy = cfg.task == "policy"
        self.verifier = None
        if policy and self.colocated:
            self.verifier = self._in_learner("verifier")
        elif policy:
            self.verifier = self._start(
                "verifier", VerifierWorker, cfg.reward.verifier, soft_engine_factory(cfg)
            )
        self.genrm = None
        if policy and cfg.reward.writing.type == "genrm":
            self.genrm = self._start(
                "genrm",
                GenRMWorker,
                cfg.reward.writing,
                cfg.model,
                self._device("genrm"),
                seed=cfg.trainer.seed,
            )
        self.reference = None
        if cfg.uses_reference and self.colocated:
            self.reference = self._in_learner("reference")
        elif cfg.uses_reference:
            self.reference = self._start(
                "reference", ReferenceWorker, cfg, self._device("reference")
            )
        wait_ready(
            {role: actors for role, (actors, _) in self._started.items()},
            {role: options for role, (_, options) in self._started.items()},
            cfg.cluster.startup_timeout_s,
        )
        self.pad_token_id = ray.get(self.rollout.actors[0].pad_token_id.remote())
        if self.nccl_sync:
            self._init_weight_group()
        self.sync_weights()  # rollout engines start from exactly the learner's weights

    def _device(self, role: str) -> str:
        return "cuda" if getattr(self.cfg.cluster, role).gpus > 0 else "cpu"

    def _start(self, role: str, actor_cls, *args, on_restart=None, **kwargs) -> ActorGroup:
        placements = self.plan.replicas.get(role, [])
        if not placements:
            raise ValueError(f"cluster.{role}.replicas: is 0, but this run needs the {role} role")
        env = cpu_learner_env(self.cfg) if role == "learner" else None
        options = {r: actor_options(self.pg, r, env) for r in placements}
        faults = FaultPolicy(
            role=role,
            # A learner rank holds its shard of the optimizer: it is never restarted.
            restarts=0 if role == "learner" else self.cfg.cluster.actor_restarts,
            timeout_s=self.cfg.cluster.call_timeout_s,
            on_restart=on_restart,
            restart_timeout_s=self.cfg.cluster.startup_timeout_s,
        )
        group = ActorGroup.start(
            actor_cls, placements, options.__getitem__, *args, faults=faults, **kwargs
        )
        self._started[role] = (group.actors, list(options.values()))
        return group

    def _in_learner(self, role: str) -> ActorGroup:
        """A colocated role: the learner's rank-0 actor, called under the role's own name."""
        return ActorGroup(
            self.learner.ranks.actors[:1],
            FaultPolicy(role=role, restarts=0, timeout_s=self.cfg.cluster.call_timeout_s),
        )

    def _restarted_rollout(self, actor) -> None:
        """A restarted engine starts from the model's initial weights: give it the learner's."""
        if self.nccl_sync:
            raise ActorFailed(
                "a rollout engine was restarted, and the NCCL weight group cannot take a new "
                "member mid-run; continue with --resume"
            )
        state, sent = self.learner.export_weights()
        if ray.get(actor.load_weights.remote(state)) != sent:
            raise ActorFailed("a restarted rollout engine did not load the learner's weights")

    # ------------------------------------------------------------------ Services

    def sample(self, rows, params) -> list[Group]:
        return self.rollout.map("sample", list(rows), params)

    def sample_chunks(self, rows, params):
        """Each rollout replica's share of `rows` (contiguous, in order) as `(share index,
        groups)`, the first replica to answer first: the driver scores a share while the others
        are still sampling."""
        yield from self.rollout.map_async("sample", list(rows), params).as_completed()

    def score_async(self, groups: list[Group], judge: bool = True) -> ScoresInFlight:
        """Verification and judging of `groups` started, side by side; `.get()` waits for them."""
        texts = [g.for_scoring() for g in groups]  # the rewards read no token ids or log-probs
        verdicts = self.verifier.map_async("check", texts)
        scores = self.genrm.map_async("score", texts) if judge and self.genrm is not None else None
        return ScoresInFlight(groups, verdicts, scores)

    def score(self, groups: list[Group], judge: bool = True) -> list[ScoredGroup]:
        return self.score_async(groups, judge).get()

    def read_judgments(self, groups: list[Group]) -> list:
        return self.rollout.map("read_judgments", groups)

    def judge_held_out(self, pairs: list) -> list:
        return self.rollout.map("judge_held_out", pairs)

    def reference_logprobs(self, tokens: TokenBatch) -> torch.Tensor:
        chunks = [
            c.compact() for c in tokens.chunks(len(self.reference))
        ]  # not the whole batch each
        return torch.cat(self.reference.call_each("reference_logprobs", chunks))

    def update_policy(self, batch: TrainBatch) -> dict:
        return self.learner.update(batch)

    def _init_weight_group(self) -> None:
        tps = self.rollout.call_all("tensor_parallel_size")
        world = 1 + sum(tps)
        addr, port = ray.get(self.learner.rank0.address.remote())
        offsets = [1 + sum(tps[:i]) for i in range(len(tps))]
        ray.get(
            [self.learner.rank0.init_weight_group.remote(addr, port, world)]
            + [
                w.init_weight_group.remote(addr, port, off, world)
                for w, off in zip(self.rollout.actors, offsets)
            ]
        )
        self.weight_metas = ray.get(self.learner.rank0.weight_metas.remote())

    def sync_weights(self) -> None:
        if self.colocated:
            return  # the engine generates with the learner's parameters themselves
        if self.nccl_sync:
            receive = self.rollout.call_all_async("receive_weights", self.weight_metas)
            sent = self.learner.broadcast_weights_async().results()[0]
            counts = receive.results()
            if sent != len(self.weight_metas) or any(c != sent for c in counts):
                raise RuntimeError(
                    f"NCCL weight sync sent {sent} tensors, engines received {counts}"
                )
            return
        state, sent = self.learner.export_weights()
        counts = self.rollout.call_all("load_weights", state)
        if sent == 0 or any(c != sent for c in counts):
            raise RuntimeError(
                f"weight sync: the learner sent {sent} tensors, the rollout engines loaded {counts}"
            )

    def save(self, directory: str, client_state: dict, remote: str | None = None) -> None:
        self.learner.save(directory, client_state, remote)

    def load(self, directory: str, remote: str | None = None) -> dict:
        return self.learner.load(directory, remote)

    def shutdown(self) -> None:
        from ray.util.placement_group import remove_placement_group

        groups = [self.learner.ranks, self.genrm]
        if not self.colocated:
            groups += [self.rollout, self.reference, self.verifier]
        for group in groups:
            if group is not None:
                group.kill()
        remove_placement_group(self.pg)

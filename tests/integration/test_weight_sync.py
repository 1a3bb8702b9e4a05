"""After a sync, the rollout engine's log-probs equal the learner's on the same tokens (CPU, real
Ray + DeepSpeed)."""

from __future__ import annotations

import os

import pytest
import ray
import torch

from rlmr.config import load_config
from rlmr.config.placement import plan_placement
from rlmr.core.records import Group, PromptRow, Response, TokenBatch, TrainBatch
from rlmr.verify import VerifyGroup, verify_groups
from rlmr.verify.api import group_verdicts

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


PROMPT = (5, 17, 33, 9)
RESPONSES = [(40 + i, 41, 42 + i, 7) for i in range(4)]
ADVANTAGES = torch.tensor([[1.0, -1.0, 0.5, -0.5]])


def _config(repo, tmp_path, *overrides):
    """configs/tiny.yaml for one group of 4, a large learning rate, the verifier as the reward."""
    return load_config(
        repo / "configs" / "tiny.yaml",
        [
            "learner.lr=0.05",
            "learner.micro_batch_size=4",
            "rollout.prompts_per_step=1",
            "rollout.n=4",
            "reward.strategy=verifier_only",
            "reward.writing={type: none}",
            "cluster.genrm.replicas=0",
            f"logging.output_dir={tmp_path}",
            *overrides,
        ],
    )


def _learner(cfg, plan, pg, worker_cls):
    from actors.group import ActorGroup
    from actors.learner import LearnerGroup
    from actors.placement import actor_options

    ranks = plan.replicas["learner"]
    return LearnerGroup(
        ActorGroup.start(worker_cls, ranks, lambda r: actor_options(pg, r), cfg, len(ranks), "cpu")
    )


def _tokens() -> TokenBatch:
    group = Group(
        PromptRow("p", "x"),
        "x",
        PROMPT,
        tuple(Response("r", r, (-1.0,) * 4, "stop") for r in RESPONSES),
    )
    return TokenBatch.from_groups([group], pad_token_id=0)


def _engine_lp(actor) -> torch.Tensor:
    """The rollout engine's log-probs of the 4 responses, `[4, 4]`."""
    out = ray.get(actor.sequence_logprobs.remote([list(PROMPT)] * 4, [list(r) for r in RESPONSES]))
    return torch.tensor(out)


def test_rollout_matches_learner_after_sync(local_ray, repo, tmp_path):
    from actors.learner import LearnerWorker
    from actors.placement import actor_options, create_placement_group
    from actors.rollout import RolloutWorker

    cfg = _config(repo, tmp_path, "algo.kl.beta=0", "cluster.reference.replicas=0")
    plan = plan_placement(cfg.cluster)
    pg = create_placement_group(plan)
    learner = _learner(cfg, plan, pg, LearnerWorker)
    rollout = RolloutWorker.options(**actor_options(pg, plan.replicas["rollout"][0])).remote(
        cfg, "cpu"
    )
    batch = TrainBatch.of(_tokens(), ADVANTAGES)

    def rollout_lp():
        return _engine_lp(rollout)

    def learner_lp():
        lp = ray.get(learner.rank0.logprobs.remote(batch))
        return lp[batch.response_mask].reshape(4, 4)

    state, sent = learner.export_weights()
    # Every tensor of the tiny model: 2 layers x 9, embeddings, final norm, lm_head.
    assert sent == 2 * 9 + 3 and ray.get(rollout.load_weights.remote(state)) == sent
    assert torch.allclose(rollout_lp(), learner_lp(), atol=1e-5)  # same start

    learner.update(batch)  # a large step: the learner's weights move
    moved = (rollout_lp() - learner_lp()).abs().max().item()
    assert moved > 1e-3

    state, sent = learner.export_weights()
    assert ray.get(rollout.load_weights.remote(state)) == sent
    assert torch.allclose(rollout_lp(), learner_lp(), atol=1e-5)


def test_a_colocated_engine_generates_with_the_learners_weights_without_a_sync(
    local_ray, repo, tmp_path
):
    """`cluster.colocate`: one actor is the learner, the rollout engine, the reference and the
    verifier. After an update the engine's log-probs are the learner's new ones with nothing
    sent; the reference keeps the initial ones; sampling in between leaves the learner training
    (train mode restored, the next update moves the weights again); the verifier checks the
    sampled group in the same process."""
    from actors.colocated import ColocatedWorker
    from actors.placement import create_placement_group
    from rlmr.engine.base import SamplingParams
    from rlmr.engine.cpu_linear import onednn_available

    cfg = _config(
        repo,
        tmp_path,
        "cluster.colocate=true",
        # The packed kernel, where this PyTorch has it: its copies of the weights must follow the
        # learner's optimizer, which writes them without moving their version counters.
        f"rollout.engine.linear_kernel={'onednn' if onednn_available() else 'default'}",
    )
    assert cfg.uses_reference
    plan = plan_placement(cfg.cluster)
    assert not {"rollout", "reference", "verifier"} & set(plan.replicas)
    learner = _learner(cfg, plan, create_placement_group(plan), ColocatedWorker)
    actor = learner.rank0
    tokens = _tokens()
    initial_ref = ray.get(actor.reference_logprobs.remote(tokens))  # the KL term's input
    batch = TrainBatch.of(tokens, ADVANTAGES, initial_ref)

    def engine_lp():
        return _engine_lp(actor)

    def learner_lp():
        lp = ray.get(actor.logprobs.remote(batch))
        return lp[batch.response_mask].reshape(4, 4)

    def reference_lp():
        lp = ray.get(actor.reference_logprobs.remote(batch))
        return lp[batch.response_mask].reshape(4, 4)

    start = learner_lp()
    assert torch.allclose(engine_lp(), start, atol=1e-5)
    assert torch.allclose(reference_lp(), start, atol=1e-5)

    def packed_in(worker) -> int:
        """How many of the engine's layers hold a packed weight copy (run in the actor)."""
        return sum(
            getattr(m, "_rlmr_packed", None) is not None for m in worker.engine.model.modules()
        )

    def packed_layers():
        return ray.get(actor.__ray_call__.remote(packed_in))

    assert packed_layers() == (15 if onednn_available() else 0)  # packed by the calls above

    def count_packed_at_each_update(self):
        inner = self.learner.update

        def update(shard):
            self.packed_at_update.append(packed_in(self))
            return inner(shard)

        self.packed_at_update = []
        self.learner.update = update

    ray.get(actor.__ray_call__.remote(count_packed_at_each_update))
    learner.update(batch)  # a large step; no weight sync follows
    # The update, the process's peak, runs without them (half a model's memory on SmolLM2).
    assert ray.get(actor.__ray_call__.remote(lambda self: self.packed_at_update)) == [0]
    # The copies packed before the step are dropped (the fused optimizer's writes do not move the
    # version counters that would otherwise tell them apart; on small layers oneDNN's packed
    # tensor may share the weight's memory, so the log-probs alone cannot show a stale copy).
    assert packed_layers() == 0
    after = learner_lp()
    assert (after - start).abs().max().item() > 1e-3
    assert torch.allclose(engine_lp(), after, atol=1e-5)
    assert torch.allclose(reference_lp(), start, atol=1e-5)  # the reference stays frozen

    # Sampling (eval mode, KV cache) in between, then another update that moves the weights.
    groups = ray.get(
        actor.sample.remote(
            [PromptRow("q", "Write one line.", ({"type": "punctuation:no_comma"},))],
            SamplingParams(n=2, max_new_tokens=6, seed=0),
        )
    )
    assert len(groups) == 1 and len(groups[0].responses) == 2
    (verdicts,) = ray.get(actor.check.remote(groups))
    expected = verify_groups([VerifyGroup(groups[0].row.constraints, groups[0].texts)])
    assert verdicts == group_verdicts(expected[0])
    info = ray.get(actor.verifier_info.remote())
    assert info["checked"] == 2
    assert info["pid"] == ray.get(actor.__ray_call__.remote(lambda self: os.getpid()))
    stats = learner.update(batch)
    assert stats["grad_norm"] > 0
    again = learner_lp()
    assert (again - after).abs().max().item() > 1e-3
    assert torch.allclose(engine_lp(), again, atol=1e-5)

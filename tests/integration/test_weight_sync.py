"""After a sync, the rollout engine's log-probs equal the learner's on the same tokens (CPU, real
Ray + DeepSpeed)."""

from __future__ import annotations

import pytest
import ray
import torch

from rlmr.config import load_config
from rlmr.config.placement import plan_placement
from rlmr.core.records import Group, PromptRow, Response, TokenBatch, TrainBatch

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_rollout_matches_learner_after_sync(local_ray, repo, tmp_path):
    from actors.group import ActorGroup
    from actors.learner import LearnerGroup, LearnerWorker
    from actors.placement import actor_options, create_placement_group
    from actors.rollout import RolloutWorker

    cfg = load_config(
        repo / "configs" / "tiny.yaml",
        [
            "learner.lr=0.05",
            "learner.micro_batch_size=4",
            "rollout.prompts_per_step=1",
            "rollout.n=4",
            "algo.kl.beta=0",
            "reward.strategy=verifier_only",
            "reward.writing={type: none}",
            "cluster.genrm.replicas=0",
            "cluster.reference.replicas=0",
            f"logging.output_dir={tmp_path}",
        ],
    )
    plan = plan_placement(cfg.cluster)
    pg = create_placement_group(plan)
    ranks = plan.replicas["learner"]
    learner = LearnerGroup(
        ActorGroup.start(
            LearnerWorker, ranks, lambda r: actor_options(pg, r), cfg, len(ranks), "cpu"
        )
    )
    rollout = RolloutWorker.options(**actor_options(pg, plan.replicas["rollout"][0])).remote(
        cfg, "cpu"
    )

    prompt = (5, 17, 33, 9)
    responses = [(40 + i, 41, 42 + i, 7) for i in range(4)]
    group = Group(
        PromptRow("p", "x"),
        "x",
        prompt,
        tuple(Response("r", r, (-1.0,) * 4, "stop") for r in responses),
    )
    batch = TrainBatch.of(
        TokenBatch.from_groups([group], pad_token_id=0), torch.tensor([[1.0, -1.0, 0.5, -0.5]])
    )

    def rollout_lp():
        out = ray.get(
            rollout.sequence_logprobs.remote([list(prompt)] * 4, [list(r) for r in responses])
        )
        return torch.tensor(out)

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

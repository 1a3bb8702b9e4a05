"""The GPU layout as Ray and vLLM will see it: tensor-parallel engines find their own bundles, the
plan follows the nodes Ray really chose, GPU actors get the NCCL environment, and layouts NCCL
cannot run are refused. No Ray cluster, no GPU (`actor_options` only builds option dicts)."""

from __future__ import annotations

import pytest

from rlmr.config import ClusterConfig
from rlmr.config.placement import PlacementError, plan_placement, remap_to_nodes


def _cluster(**roles) -> ClusterConfig:
    spec = {
        "learner": {"replicas": 2, "gpus": 1},
        "reference": {"replicas": 0},
        "genrm": {"replicas": 0},
        "rollout": {"replicas": 3, "gpus": 2},
        "verifier": {"replicas": 1},
    }
    spec.update(roles)
    return ClusterConfig(nodes=2, gpus_per_node=4, **spec)


def test_tensor_parallel_engine_asks_for_no_gpu_and_names_its_bundles():
    from actors.placement import actor_options

    plan = plan_placement(_cluster())
    tp = plan.replicas["rollout"][1]
    assert len(tp.bundles) == 2
    opts = actor_options("pg", tp)
    # vLLM's Ray executor asks for the GPUs of these bundles itself; the actor holding the engine
    # must not take one of them.
    assert opts["num_gpus"] == 0
    env = opts["runtime_env"]["env_vars"]
    assert env["VLLM_RAY_BUNDLE_INDICES"] == ",".join(map(str, tp.bundles))
    assert env["VLLM_RAY_PER_WORKER_GPUS"] == "1"
    assert env["NCCL_CUMEM_ENABLE"] == "0"
    assert opts["scheduling_strategy"].placement_group_bundle_index == tp.bundles[0]
    assert opts["scheduling_strategy"].placement_group_capture_child_tasks


def test_single_gpu_actors_take_their_gpu_and_cpu_actors_get_no_nccl_environment():
    from actors.placement import actor_options

    plan = plan_placement(
        _cluster(rollout={"replicas": 2, "gpus": 1}, reference={"replicas": 2, "gpus": 0.5})
    )
    learner = actor_options("pg", plan.replicas["learner"][0])
    assert learner["num_gpus"] == 1
    assert learner["runtime_env"]["env_vars"] == {"NCCL_CUMEM_ENABLE": "0"}
    assert actor_options("pg", plan.replicas["reference"][0])["num_gpus"] == 0.5
    verifier = actor_options("pg", plan.replicas["verifier"][0], {"A": "1"})
    assert verifier["num_gpus"] == 0
    assert verifier["runtime_env"]["env_vars"] == {"A": "1"}


def test_vllm_executor_is_in_process_for_one_gpu_and_ray_for_tensor_parallel():
    from rlmr.engine.vllm import executor_backend

    assert executor_backend(1) == "uni"
    assert executor_backend(2) == "ray"
    assert executor_backend(8) == "ray"


def test_plan_follows_the_nodes_ray_chose():
    plan = plan_placement(_cluster())
    # Ray put the first GPU bundles on the second node, interleaved: node-major order is gone.
    real = ["b", "a", "b", "a", "a", "b", "a", "b", "cpu-node"]
    placed = remap_to_nodes(plan, real)
    for role, reps in placed.replicas.items():
        for r in reps:
            nodes = {real[b] for b in r.bundles}
            assert len(nodes) == 1, (role, r)
            assert {placed.bundle_nodes[b] for b in r.bundles} == {r.node}
    # Every GPU bundle is used exactly as often as planned (a permutation, nothing lost).
    planned = sorted(b for reps in plan.replicas.values() for r in reps for b in r.bundles)
    moved = sorted(b for reps in placed.replicas.values() for r in reps for b in r.bundles)
    assert planned == moved
    assert sorted(placed.gpu_load()) == sorted(plan.gpu_load())
    # The learner's two ranks (planned on node 0) land together on the first node Ray used.
    assert {real[b] for r in placed.replicas["learner"] for b in r.bundles} == {"b"}


def test_identity_placement_changes_nothing():
    plan = plan_placement(_cluster())
    placed = remap_to_nodes(plan, [str(n) for n in plan.bundle_nodes])
    assert placed.replicas == plan.replicas


def test_a_tensor_parallel_replica_split_across_nodes_is_named():
    plan = plan_placement(_cluster())
    # Three GPUs on one node and five on the other: some 2-GPU engine must straddle.
    real = ["a", "a", "a", "b", "b", "b", "b", "b", "a"]
    with pytest.raises(PlacementError, match=r"rollout: replica \d needs its 2 GPUs on one node"):
        remap_to_nodes(plan, real)
    with pytest.raises(PlacementError, match="has 3 bundles, the plan 9"):
        remap_to_nodes(plan, ["a"] * 3)


def test_gpu_bundles_are_reserved_alike_so_any_one_can_take_a_replica():
    plan = plan_placement(_cluster(learner={"replicas": 2, "gpus": 1, "cpus": 6}))
    gpu = [b for b in plan.ray_bundles() if b.get("GPU")]
    assert len(gpu) == 8
    assert all(b == {"GPU": 1.0, "CPU": 6.0} for b in gpu)
    assert plan.ray_bundles()[-1] == plan.bundles[-1]  # the verifier's CPU bundle as planned


def test_learner_and_rollout_never_share_a_gpu():
    # NCCL refuses two members of the weight-sync group on one device.
    with pytest.raises(ValueError, match="rollout: no node has 1 free GPU"):
        ClusterConfig(
            nodes=1,
            gpus_per_node=1,
            learner={"replicas": 1, "gpus": 0.5},
            rollout={"replicas": 1, "gpus": 0.5},
        )
    plan = plan_placement(
        ClusterConfig(
            nodes=1,
            gpus_per_node=2,
            learner={"replicas": 1, "gpus": 0.5},
            rollout={"replicas": 1, "gpus": 0.5},
            reference={"replicas": 1, "gpus": 0.5},
        )
    )
    assert plan.replicas["learner"][0].bundles != plan.replicas["rollout"][0].bundles
    # Other roles still share with the learner.
    assert plan.replicas["learner"][0].bundles == plan.replicas["reference"][0].bundles


def test_engine_tensor_parallel_size_must_match_the_gpus_of_a_replica(repo):
    from rlmr.config import ConfigError, load_config

    gpu = [
        "cluster.gpus_per_node=4",
        "cluster.learner.gpus=1",
        "cluster.reference.gpus=0.5",
        "cluster.genrm.gpus=0.5",
        "rollout.engine={type: vllm, tensor_parallel_size: 2}",
    ]
    with pytest.raises(ConfigError, match=r"cluster\.rollout\.gpus: 1 GPUs per replica"):
        load_config(repo / "configs" / "tiny.yaml", gpu + ["cluster.rollout.gpus=1"])
    ok = load_config(repo / "configs" / "tiny.yaml", gpu + ["cluster.rollout.gpus=2"])
    assert ok.cluster.rollout.gpus == 2


def test_a_reference_or_learner_replica_runs_on_one_gpu():
    # The reference worker loads a whole copy onto cuda:0; more GPUs per replica would idle.
    for role in ("reference", "learner"):
        with pytest.raises(ValueError, match=rf"{role}\.gpus: 2, but a {role} replica runs on one"):
            _cluster(**{role: {"replicas": 1, "gpus": 2}})

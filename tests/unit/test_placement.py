"""Placement planning: 1 CPU node and 1..4 nodes x 8 GPUs. No Ray, no GPU."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from rlmr.config import ClusterConfig, RoleResources, load_config
from rlmr.config.placement import PlacementError, plan_placement

REPO = Path(__file__).resolve().parents[2]


def _check_invariants(cluster: ClusterConfig, plan):
    # Every replica of every role is placed exactly once.
    for role in ("learner", "reference", "rollout", "genrm", "verifier"):
        res = getattr(cluster, role)
        gpus = getattr(res, "gpus", 0.0)  # the verifier's section has none
        reps = plan.replicas.get(role, [])
        assert [r.replica for r in reps] == list(range(res.replicas)), role
        for r in reps:
            # A replica's bundles sit on one node and exist.
            assert {plan.bundle_nodes[b] for b in r.bundles} == {r.node}
            assert all(0 <= b < len(plan.bundles) for b in r.bundles)
            if gpus >= 1:
                assert len(r.bundles) == int(-(-gpus // 1))
            if gpus == 0:
                assert r.gpus_per_bundle == 0.0
    # Ray's GPU accounting never oversubscribes a bundle, and GPU bundles hold one GPU.
    for b, load in enumerate(plan.gpu_load()):
        assert load <= 1.0 + 1e-9, (b, load)
        assert plan.bundles[b].get("GPU", 0.0) in (0.0, 1.0)
    assert sum(b.get("GPU", 0.0) for b in plan.bundles) == cluster.nodes * cluster.gpus_per_node
    # Nodes never hold more GPUs than they have.
    for node in range(cluster.nodes):
        assert (
            sum(1 for b, n in zip(plan.bundles, plan.bundle_nodes) if n == node and b.get("GPU"))
            <= cluster.gpus_per_node
        )


def test_one_cpu_node():
    cluster = load_config(REPO / "configs" / "tiny.yaml").cluster
    plan = plan_placement(cluster)
    _check_invariants(cluster, plan)
    assert all("GPU" not in b for b in plan.bundles)
    assert set(plan.replicas) == {"learner", "reference", "rollout", "genrm", "verifier"}


@pytest.mark.parametrize("nodes", [1, 2, 3, 4])
def test_gpu_nodes(nodes):
    total = nodes * 8
    learner = total // 2
    cluster = ClusterConfig(
        nodes=nodes,
        gpus_per_node=8,
        learner={"replicas": learner, "gpus": 1},
        reference={"replicas": 0},
        rollout={"replicas": (total - learner) // 4 or 1, "gpus": 2},
        genrm={"replicas": 1, "gpus": 1},
        verifier={"replicas": 2 * nodes},
    )
    plan = plan_placement(cluster)
    _check_invariants(cluster, plan)
    # Roles with whole GPUs never share one.
    owners: dict[int, set] = {}
    for role, reps in plan.replicas.items():
        for r in reps:
            for b in r.bundles:
                if r.gpus_per_bundle:
                    owners.setdefault(b, set()).add(role)
    assert all(len(v) == 1 for v in owners.values())


def test_fractional_replicas_of_different_roles_share_a_gpu():
    cluster = ClusterConfig(
        nodes=1,
        gpus_per_node=3,
        learner={"replicas": 1, "gpus": 1},
        reference={"replicas": 1, "gpus": 0.5},
        genrm={"replicas": 1, "gpus": 0.5},
        rollout={"replicas": 1, "gpus": 1},
        verifier={"replicas": 1},
    )
    plan = plan_placement(cluster)
    _check_invariants(cluster, plan)
    assert plan.replicas["reference"][0].bundles == plan.replicas["genrm"][0].bundles
    assert plan.gpu_load()[:3] == [1.0, 1.0, 1.0]  # the verifier's CPU bundle comes after the GPUs


def test_tensor_parallel_replica_never_straddles_nodes():
    # 2 nodes x 8: a 3-GPU replica fits twice per node, never across the boundary.
    cluster = ClusterConfig(
        nodes=2,
        gpus_per_node=8,
        learner={"replicas": 2, "gpus": 1},
        rollout={"replicas": 4, "gpus": 3},
        genrm={"replicas": 0},
        reference={"replicas": 0},
    )
    plan = plan_placement(cluster)
    _check_invariants(cluster, plan)


def test_too_big_replica_names_the_role():
    cluster = ClusterConfig.model_construct(
        nodes=2,
        gpus_per_node=4,
        colocate=False,
        **{
            role: RoleResources(**spec)
            for role, spec in {
                "learner": {"replicas": 1, "gpus": 1},
                "rollout": {"replicas": 3, "gpus": 3},
                "genrm": {"replicas": 0},
                "reference": {"replicas": 0},
                "verifier": {"replicas": 1},
            }.items()
        },
    )
    with pytest.raises(PlacementError, match="rollout: no node has 3 free GPU"):
        plan_placement(cluster)
    # The config validator runs the same planner and names the dotted key.
    with pytest.raises(ValidationError, match="rollout: no node has 3 free GPU"):
        ClusterConfig(
            nodes=2,
            gpus_per_node=4,
            learner={"replicas": 1, "gpus": 1},
            rollout={"replicas": 3, "gpus": 3},
            genrm={"replicas": 0},
            reference={"replicas": 0},
        )


@pytest.mark.parametrize(
    "name", ["qwen2.5-7b-rlmr.yaml", "qwen2.5-32b-rlmr-4node.yaml", "smollm2-cpu.yaml"]
)
def test_shipped_configs_place(name):
    cfg = load_config(REPO / "configs" / name)
    plan = plan_placement(cfg.cluster)
    _check_invariants(cfg.cluster, plan)
    if cfg.cluster.gpus_per_node:
        used = {
            b
            for reps in plan.replicas.values()
            for r in reps
            for b in r.bundles
            if r.gpus_per_bundle
        }
        assert len(used) == cfg.cluster.nodes * cfg.cluster.gpus_per_node  # every GPU does work

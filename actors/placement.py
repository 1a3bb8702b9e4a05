"""Turn `rlmr.config.placement.PlacementPlan` into a Ray placement group and per-replica actor
options."""

from __future__ import annotations

import ray
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from rlmr.config.placement import PlacementPlan, ReplicaPlacement


def create_placement_group(plan: PlacementPlan, timeout_s: float = 300.0):
    """Reserve every bundle of the plan; raises with the bundle list when the cluster cannot hold
    it."""
    bundles = [{k: v for k, v in b.items() if v > 0} or {"CPU": 0.001} for b in plan.bundles]
    pg = placement_group(bundles, strategy=plan.strategy)
    ready, _ = ray.wait([pg.ready()], timeout=timeout_s)
    if not ready:
        remove_placement_group(pg)
        raise RuntimeError(
            f"the cluster could not reserve {len(bundles)} bundles within {timeout_s:.0f} s "
            f"(asked: {bundles}; available: {ray.available_resources()})"
        )
    return pg


def actor_options(pg, replica: ReplicaPlacement, env: dict[str, str] | None = None) -> dict:
    """`.options(...)` for one replica: its first bundle, its GPU share, its CPUs."""
    return {
        "num_cpus": replica.cpus,
        "num_gpus": replica.gpus_per_bundle if len(replica.bundles) == 1 else 0,
        "scheduling_strategy": PlacementGroupSchedulingStrategy(
            placement_group=pg,
            placement_group_bundle_index=replica.bundles[0],
            placement_group_capture_child_tasks=True,
        ),
        "runtime_env": {"env_vars": dict(env or {})},
    }

"""Turn `rlmr.config.placement.PlacementPlan` into a Ray placement group and per-replica actor
options.

How a vLLM engine finds its GPUs (as vLLM's RLHF examples and OpenRLHF do it):
- tensor-parallel size 1: the actor itself asks for the GPU (`num_gpus`) and
  vLLM runs in-process (`distributed_executor_backend="uni"`);
- tensor-parallel size > 1: the actor asks for no GPU; vLLM's Ray executor
  starts one worker per GPU inside the run's placement group (the actor's
  children are captured by it), on exactly the bundles named in
  `VLLM_RAY_BUNDLE_INDICES`, each asking `VLLM_RAY_PER_WORKER_GPUS`. Without
  them vLLM takes the first GPU bundles, which are the learner's, and waits
  forever.
"""

from __future__ import annotations

import ray
from ray.util.placement_group import placement_group, placement_group_table, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from rlmr.config.placement import PlacementPlan, ReplicaPlacement, remap_to_nodes

# vLLM 0.8-0.10.1 hangs in the NCCL weight broadcast unless both ends disable NCCL's cuMem
# allocator; set on every GPU actor (children, such as vLLM's Ray workers, inherit it).
GPU_ENV = {"NCCL_CUMEM_ENABLE": "0"}


def create_placement_group(plan: PlacementPlan, timeout_s: float = 300.0):
    """Reserve every bundle of the plan; raises with the bundle list when the cluster cannot hold
    it."""
    bundles = [{k: v for k, v in b.items() if v > 0} or {"CPU": 0.001} for b in plan.ray_bundles()]
    pg = placement_group(bundles, strategy=plan.strategy)
    ready, _ = ray.wait([pg.ready()], timeout=timeout_s)
    if not ready:
        remove_placement_group(pg)
        raise RuntimeError(
            f"the cluster could not reserve {len(bundles)} bundles within {timeout_s:.0f} s "
            f"(asked: {bundles}; available: {ray.available_resources()})"
        )
    return pg


def placed_plan(pg, plan: PlacementPlan) -> PlacementPlan:
    """`plan` with its replicas moved to the bundles of the nodes Ray really chose."""
    table = placement_group_table(pg)["bundles_to_node_id"]
    return remap_to_nodes(plan, [table[i] for i in range(len(plan.bundles))])


def actor_options(pg, replica: ReplicaPlacement, env: dict[str, str] | None = None) -> dict:
    """`.options(...)` for one replica: its first bundle, its GPU share, its CPUs, its
    environment."""
    env_vars = dict(env or {})
    multi_gpu = len(replica.bundles) > 1
    if replica.gpus_per_bundle > 0:
        env_vars.update(GPU_ENV)
    if multi_gpu:
        env_vars["VLLM_RAY_BUNDLE_INDICES"] = ",".join(str(b) for b in replica.bundles)
        env_vars["VLLM_RAY_PER_WORKER_GPUS"] = f"{replica.gpus_per_bundle:g}"
    return {
        "num_cpus": replica.cpus,
        "num_gpus": 0 if multi_gpu else replica.gpus_per_bundle,
        "scheduling_strategy": PlacementGroupSchedulingStrategy(
            placement_group=pg,
            placement_group_bundle_index=replica.bundles[0],
            placement_group_capture_child_tasks=True,
        ),
        "runtime_env": {"env_vars": env_vars},
    }


def wait_ready(actors: dict[str, list], asked: dict[str, list[dict]], timeout_s: float) -> None:
    """Wait until every actor's constructor has returned; after `timeout_s`, raise naming each
    actor that has not started and the resources it asked for.

    `actors[role][i]` is replica i of `role`, `asked[role][i]` its `.options(...)`. A constructor
    that raised re-raises here (Ray's own error, naming the actor class).
    """
    refs = {
        a.__ray_ready__.remote(): (role, i)
        for role, acts in actors.items()
        for i, a in enumerate(acts)
    }
    ready, waiting = ray.wait(list(refs), num_returns=len(refs), timeout=timeout_s)
    ray.get(ready)  # surfaces constructor errors
    if waiting:
        lines = []
        for ref in waiting:
            role, i = refs[ref]
            opts = asked[role][i]
            strategy = opts["scheduling_strategy"]
            lines.append(
                f"{role} replica {i}: num_gpus={opts['num_gpus']:g} num_cpus={opts['num_cpus']:g} "
                f"bundle {strategy.placement_group_bundle_index}, "
                f"env {sorted(opts['runtime_env']['env_vars'])}"
            )
        raise RuntimeError(
            f"{len(waiting)} actor(s) did not start within {timeout_s:.0f} s "
            "(cluster.startup_timeout_s):\n  "
            + "\n  ".join(lines)
            + f"\nfree resources: {ray.available_resources()}"
        )

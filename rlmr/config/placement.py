"""Placement: map the cluster config to Ray placement-group bundles, as a pure function.

Every GPU of the cluster becomes one bundle `{"GPU": 1, "CPU": c}` (node-major,
as OpenRLHF and slime lay them out), and CPU-only roles get bundles of their
own. Each replica of a role is assigned bundles:

- a replica with `gpus >= 1` takes `ceil(gpus)` whole GPUs on one node (a
  tensor-parallel vLLM engine cannot straddle nodes);
- replicas of different roles with fractional `gpus` share a GPU while their
  fractions fit;
- the verifier, and every role on a CPU-only cluster, gets CPU bundles.

`plan_placement` raises `PlacementError` naming the role that does not fit.
The Ray side (`actors/`) turns a `PlacementPlan` into a placement group and
scheduling strategies; nothing here imports Ray.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the schema calls the planner in its validator; this module needs only the type
    from rlmr.config.cluster import ClusterConfig

GPU_ROLES = ("learner", "reference", "rollout", "genrm")
ALL_ROLES = ("learner", "reference", "rollout", "genrm", "verifier")


# A learner rank and a vLLM rollout engine on one GPU would both join the NCCL weight-sync group
# from the same device, which NCCL refuses ("Duplicate GPU detected"). Colocation
# (cluster.colocate) puts an HF rollout engine in the learner's own process instead.
NEVER_SHARE = ({"learner", "rollout"},)

# The roles that run inside the learner rank's process under cluster.colocate: no bundles of
# their own.
COLOCATED = ("rollout", "reference", "verifier")


def _placed_roles(cluster: ClusterConfig) -> tuple[str, ...]:
    return tuple(r for r in ALL_ROLES if not (cluster.colocate and r in COLOCATED))


class PlacementError(ValueError):
    """The cluster cannot hold the requested actors; the message names the role."""


@dataclass(frozen=True)
class ReplicaPlacement:
    """Where one actor replica runs: its bundles, and the GPU/CPU share it asks Ray for in each."""

    role: str
    replica: int
    node: int
    bundles: tuple[int, ...]
    gpus_per_bundle: float
    cpus: float


@dataclass
class PlacementPlan:
    """Bundles for one placement group and the replica -> bundle assignment."""

    bundles: list[dict[str, float]]
    bundle_nodes: list[int]
    replicas: dict[str, list[ReplicaPlacement]] = field(default_factory=dict)
    strategy: str = "PACK"

    def gpu_load(self) -> list[float]:
        """Ray GPU accounting per bundle (must never exceed 1)."""
        load = [0.0] * len(self.bundles)
        for reps in self.replicas.values():
            for r in reps:
                for b in r.bundles:
                    load[b] += r.gpus_per_bundle
        return load

    def ray_bundles(self) -> list[dict[str, float]]:
        """The bundles to reserve: every GPU bundle alike (one GPU and the largest CPU share any
        GPU bundle needs), so that `remap_to_nodes` may hand a replica any GPU bundle of the right
        node; CPU-only bundles as planned."""
        gpu_cpus = max((b.get("CPU", 0.0) for b in self.bundles if b.get("GPU")), default=0.0)
        return [
            {"GPU": b["GPU"], "CPU": gpu_cpus} if b.get("GPU") else dict(b) for b in self.bundles
        ]

    def gpus_of(self, role: str) -> float:
        return sum(r.gpus_per_bundle * len(r.bundles) for r in self.replicas.get(role, []))


def plan_placement(cluster: ClusterConfig) -> PlacementPlan:
    """Lay out every role's replicas over the cluster's GPUs and CPUs."""
    if cluster.gpus_per_node == 0:
        return _plan_cpu(cluster)
    n_gpu = cluster.nodes * cluster.gpus_per_node
    bundles: list[dict[str, float]] = [{"GPU": 1.0, "CPU": 0.0} for _ in range(n_gpu)]
    nodes = [i // cluster.gpus_per_node for i in range(n_gpu)]
    # Per GPU: the replicas on it, [(role, replica, gpus)].
    demand: list[list[tuple[str, int, float]]] = [[] for _ in range(n_gpu)]
    assignment: dict[tuple[str, int], list[int]] = {}

    placed = _placed_roles(cluster)
    for role in ("learner", "reference", "genrm", "rollout"):
        res = getattr(cluster, role)
        if res.gpus == 0 or role not in placed:
            continue
        for rep in range(res.replicas):
            assignment[(role, rep)] = _take(
                role, rep, res.gpus, demand, nodes, cluster.gpus_per_node
            )

    plan = PlacementPlan(bundles=bundles, bundle_nodes=nodes)
    for (role, rep), bs in sorted(
        assignment.items(), key=lambda kv: (ALL_ROLES.index(kv[0][0]), kv[0][1])
    ):
        res = getattr(cluster, role)
        bundles[bs[0]]["CPU"] += res.cpus
        plan.replicas.setdefault(role, []).append(
            ReplicaPlacement(
                role, rep, nodes[bs[0]], tuple(bs), _round(min(res.gpus, 1.0)), res.cpus
            )
        )

    # CPU-only roles (the verifier; GPU roles configured with gpus: 0) get CPU bundles.
    for role in placed:
        res = getattr(cluster, role)
        if getattr(res, "gpus", 0.0) > 0 or res.replicas == 0:
            continue
        for rep in range(res.replicas):
            bundles.append({"CPU": res.cpus})
            node = rep % cluster.nodes
            nodes.append(node)
            plan.replicas.setdefault(role, []).append(
                ReplicaPlacement(role, rep, node, (len(bundles) - 1,), 0.0, res.cpus)
            )
    for b in bundles:
        if b.get("CPU", 0.0) == 0.0:
            b["CPU"] = 0.0
    return plan


def _round(x: float) -> float:
    return math.floor(x * 1e6) / 1e6  # never round a share up past the bundle


def _take(role: str, rep: int, gpus: float, demand, nodes, per_node: int) -> list[int]:
    """First fit: whole GPUs on one node for gpus >= 1, or room on a partly used GPU for
    fractions."""
    if gpus > per_node:
        raise PlacementError(f"{role}: a replica asks for {gpus:g} GPUs but a node has {per_node}")
    if gpus < 1:
        for b, entries in enumerate(demand):
            used = sum(g for _, _, g in entries)
            if (
                entries
                and used + gpus <= 1.0 + 1e-9
                and all(r != role and {r, role} not in NEVER_SHARE for r, _, _ in entries)
            ):
                entries.append((role, rep, gpus))
                return [b]
    need = math.ceil(gpus)
    for node in sorted(set(nodes)):
        free = [b for b, entries in enumerate(demand) if nodes[b] == node and not entries]
        if len(free) >= need:
            chosen = free[:need]
            for b in chosen:
                demand[b].append((role, rep, min(gpus, 1.0)))
            return chosen
    raise PlacementError(f"{role}: no node has {need} free GPU(s) left for replica {rep}")


def _plan_cpu(cluster: ClusterConfig) -> PlacementPlan:
    plan = PlacementPlan(bundles=[], bundle_nodes=[], strategy="PACK")
    for role in _placed_roles(cluster):
        res = getattr(cluster, role)
        for rep in range(res.replicas):
            plan.bundles.append({"CPU": res.cpus})
            node = rep % cluster.nodes
            plan.bundle_nodes.append(node)
            plan.replicas.setdefault(role, []).append(
                ReplicaPlacement(role, rep, node, (len(plan.bundles) - 1,), 0.0, res.cpus)
            )
    return plan


def remap_to_nodes(plan: PlacementPlan, bundle_node_ids: list[str]) -> PlacementPlan:
    """The plan laid onto where Ray really put the bundles (`bundle_node_ids[i]`: the node of
    bundle i, from `placement_group_table`).

    The planner assumes GPU bundle i sits on node `i // gpus_per_node`; Ray's PACK strategy
    promises no such order. GPU bundles are regrouped node by node (nodes in order of first
    appearance) and every replica's planned bundles are renamed to real ones, so the replicas of
    one planned node land on one real node. A multi-GPU replica that would still straddle two
    nodes raises `PlacementError` naming it.
    """
    if len(bundle_node_ids) != len(plan.bundles):
        raise PlacementError(
            f"the placement group has {len(bundle_node_ids)} bundles, the plan {len(plan.bundles)}"
        )
    gpu = [b for b, spec in enumerate(plan.bundles) if spec.get("GPU", 0.0) > 0]
    order = list(dict.fromkeys(bundle_node_ids[b] for b in gpu))  # real nodes, first seen first
    real = sorted(gpu, key=lambda b: (order.index(bundle_node_ids[b]), b))
    rename = dict(zip(gpu, real))  # planned GPU bundle (node-major) -> real bundle
    node_rank = {node: i for i, node in enumerate(dict.fromkeys(bundle_node_ids))}
    out = PlacementPlan(
        bundles=[dict(b) for b in plan.bundles],  # GPU bundles are alike (see `ray_bundles`)
        bundle_nodes=[node_rank[n] for n in bundle_node_ids],
        strategy=plan.strategy,
    )
    for role, reps in plan.replicas.items():
        for r in reps:
            bundles = tuple(rename.get(b, b) for b in r.bundles)
            nodes = {out.bundle_nodes[b] for b in bundles}
            if len(nodes) > 1:
                raise PlacementError(
                    f"{role}: replica {r.replica} needs its {len(bundles)} GPUs on one node, but "
                    f"Ray placed its bundles {list(bundles)} on nodes {sorted(nodes)}"
                )
            out.replicas.setdefault(role, []).append(
                ReplicaPlacement(role, r.replica, nodes.pop(), bundles, r.gpus_per_bundle, r.cpus)
            )
    return out

"""The Markdown tables of `cluster/SCALING.md`: who runs where (`layout_table`) and what each
GPU holds (`memory_table`), from `rlmr.config.memory`'s scenarios (which prints them: this module
only formats, so it imports that one for its types alone)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rlmr.config.placement import PlacementPlan, plan_placement

if TYPE_CHECKING:
    from rlmr.config.memory import ModelShape, Scenario

GB = 1e9  # as rlmr.config.memory's


def _gb(x: float) -> str:
    return f"{x / GB:.1f}"


def _engines(res, engine, shape: ModelShape | None = None) -> str:
    """`replicas x TPn (model)`, the model named only when it is not the policy."""
    if res.replicas == 0 or res.gpus == 0:
        return "-"
    tp = f" x TP{engine.tensor_parallel_size}" if engine.type == "vllm" else ""
    model = f" ({shape.name.removeprefix('Qwen2.5-')})" if shape else ""
    return f"{res.replicas}{tp}{model}"


def layout_table(scenarios: list[Scenario]) -> str:
    """Markdown: who runs where, and how many GPUs the placement plan gives each role."""
    head = (
        "| scenario | nodes x GPUs | learner ranks, ZeRO | reference | rollout engines "
        "| GenRM engines "
        "| GPUs learner / ref / rollout / GenRM | verifier |"
    )
    lines = [head, "|---" * (head.count("|") - 1) + "|"]
    for s in scenarios:
        c, lr = s.cfg.cluster, s.cfg.learner
        plan = plan_placement(c)
        offloaded = [
            k
            for k, on in (("optimizer", lr.offload_optimizer), ("params", lr.offload_params))
            if on
        ]
        offload = " + offload " + "/".join(offloaded) if offloaded else ""
        ref = (
            f"{c.reference.replicas} x {c.reference.gpus:g} GPU"
            if s.cfg.uses_reference and c.reference.replicas
            else "- (KL off)"
        )
        judge = s.judge if s.judge is not s.policy else None
        gpus = " / ".join(
            _gpu_count(plan, role) for role in ("learner", "reference", "rollout", "genrm")
        )
        lines.append(
            f"| {s.name} | {c.nodes} x {c.gpus_per_node} "
            f"| {c.learner.replicas} x {c.learner.gpus:g} GPU, "
            f"ZeRO-{lr.zero_stage}{offload} | {ref} | {_engines(c.rollout, s.cfg.rollout.engine)} "
            f"| {_engines(c.genrm, s.cfg.reward.writing.engine, judge)} "
            f"| {gpus} | {c.verifier.replicas} |"
        )
    return "\n".join(lines)


def _gpu_count(plan: PlacementPlan, role: str) -> str:
    gpus = {b for r in plan.replicas.get(role, []) if r.gpus_per_bundle for b in r.bundles}
    return str(len(gpus)) if gpus else "-"


def memory_table(scenarios: list[Scenario], gpu_bytes: float) -> str:
    """Markdown: per-GPU memory of every role, the peak GPU, and host memory for offloaded state."""
    head = (
        "| scenario | learner states | activations (tokens) | reference | learner GPU peak "
        "| rollout weights + KV | rollout KV (sequences) | GenRM weights + KV | GenRM KV (prompts) "
        "| host per node |"
    )
    lines = [head, "|---" * (head.count("|") - 1) + "|"]
    for s in scenarios:
        r = s.report(gpu_bytes)
        ro, g = r.rollout, r.genrm
        lines.append(
            f"| {s.name} | {_gb(r.learner_states)} "
            f"| {_gb(r.learner_activations)} ({r.learner_tokens}) "
            f"| {_gb(r.reference) if r.reference else '-'} "
            f"| {_gb(r.learner_gpu_peak[0])} ({r.learner_gpu_peak[1]}) "
            f"| {_gb(ro.weights) + ' + ' + _gb(ro.kv) if ro else '-'} "
            "| "
            f"{f'{ro.kv_tokens // 1000}k ({ro.sequences} x {ro.sequence_tokens})' if ro else '-'} "
            f"| {_gb(g.weights) + ' + ' + _gb(g.kv) if g else '-'} "
            f"| {f'{g.kv_tokens // 1000}k ({g.sequences} x {g.sequence_tokens})' if g else '-'} "
            f"| {_gb(r.host_per_node) if r.host_per_node else '-'} |"
        )
    return "\n".join(lines)

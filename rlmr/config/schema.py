"""The typed, frozen configuration tree of a run: every section and the checks across sections.

One `RLMRConfig` describes a whole run: model, data, rollout, reward, algorithm,
learner, cluster, logging, checkpointing and trainer. Every field has a
description and declared bounds; unknown keys are errors; variants (model
sources, inference engines, writing rewards) are unions discriminated on
`type`. Cross-field validators name the dotted key at fault, and the cluster
section (`rlmr.config.cluster`) is placed by the pure planner
(`rlmr.config.placement`) so a layout that does not fit is refused at load.
Loading from YAML lives in `rlmr.config.loading`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from rlmr.config.cluster import ClusterConfig
from rlmr.config.judge import JudgeTaskConfig
from rlmr.config.models import EngineConfig, HFEngine, ModelConfig, ModelSource, Strict

# The margin of RLMR's dynamic penalty, as a fraction of the group's writing
# spread; `rlmr.core.rewards.DEFAULT_MARGIN` is the same number (a test keeps them equal).
DEFAULT_MARGIN = 0.1


# --------------------------------------------------------------------------- data


class DataConfig(Strict):
    """Prompt sets: rows with `prompt`, `constraints`, optional `context`, `reference`, `id`."""

    train: str = Field(
        description="JSONL / Parquet file or saved dataset folder of training prompts."
    )
    eval: str | None = Field(None, description="Held-out prompts for periodic evaluation.")
    shuffle: bool = True
    seed: int = Field(0, ge=0, description="Seed of the data order (kept across --resume).")
    max_prompt_tokens: int = Field(
        512, ge=8, le=1_048_576, description="Longer prompts are rejected at load time."
    )
    eval_size: int | None = Field(
        None, ge=1, description="Evaluate on the first N held-out prompts (all when unset)."
    )


# --------------------------------------------------------------------------- rollout


class RolloutConfig(Strict):
    """Group sampling from the current policy."""

    n: int = Field(8, ge=2, le=256, description="Responses sampled per prompt (GRPO group size).")
    prompts_per_step: int = Field(
        8, ge=1, le=65536, description="Prompts (groups) per training step."
    )
    max_new_tokens: int = Field(256, ge=1, le=1_048_576)
    temperature: float = Field(1.0, ge=0.0, le=5.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = Field(-1, ge=-1, description="-1 disables top-k.")
    dynamic_sampling: bool = Field(
        False, description="Replace zero-variance groups with fresh prompts (DAPO)."
    )
    max_refill_rounds: int = Field(
        2, ge=0, le=100, description="Extra sampling rounds allowed per step for dynamic sampling."
    )
    max_staleness: int = Field(
        0,
        ge=0,
        le=16,
        description="Asynchronous rollout: the batches of steps t+1..t+k are sampled (and "
        "judged) while the learner trains step t, from weights at most k updates old; 0 is the "
        "synchronous loop. Needs algo.behaviour_weight_cap.",
    )
    engine: EngineConfig = Field(default_factory=HFEngine)


# --------------------------------------------------------------------------- rewards


class GenRMReward(Strict):
    """Writing quality from a generative pairwise judge (RLCS GenRM)."""

    type: Literal["genrm"] = "genrm"
    model: ModelSource | None = Field(
        None, description="Judge weights; the policy's initial weights when unset."
    )
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    engine: EngineConfig = Field(default_factory=HFEngine)
    group_strategy: Literal["pivot", "round_robin", "reference", "pointwise"] = Field(
        "pivot", description="How pairwise verdicts become per-response scores."
    )
    reasoning: bool = Field(
        True, description="Write an analysis before reading the verdict; false = verdict only."
    )
    swap: bool = Field(True, description="Judge both orders and average (position debiasing).")
    max_analysis_tokens: int = Field(256, ge=1, le=65536)
    max_judge_len: int = Field(
        4096,
        ge=128,
        le=1_048_576,
        description="Judge prompt budget; longer responses are cut in the middle.",
    )
    temperature: float = Field(
        0.0, ge=0.0, le=5.0, description="Sampling temperature of the analysis."
    )


class NoWritingReward(Strict):
    """No writing judge (for `verifier_only` runs): every writing score is 0."""

    type: Literal["none"] = "none"


WritingReward = Annotated[GenRMReward | NoWritingReward, Field(discriminator="type")]


class VerifierConfig(Strict):
    """The constraint verifier (how many VerifierWorkers: `cluster.verifier.replicas`)."""

    soft_constraints: Literal["engine", "unverifiable"] = Field(
        "unverifiable",
        description="engine = ask the judge's text engine yes/no; "
        "unverifiable = report them as such.",
    )
    judge_directed_text: bool = Field(
        True, description="Always flag text addressed to the reward model."
    )
    loose: bool = Field(
        False, description="Use IFEval's loose variants when checking IFEval instruction types."
    )


class RewardConfig(Strict):
    """How writing quality and constraint verdicts become one reward (RLMR)."""

    strategy: Literal["dynamic", "writing_only", "verifier_only", "fixed"] = Field(
        "dynamic",
        description="dynamic = RLMR's per-group penalty; the others are the paper's baselines.",
    )
    all_violate: Literal["zero", "writing", "fraction"] = Field(
        "zero", description="Dynamic strategy, group where every response violates."
    )
    fixed_weight: float = Field(
        1.0, ge=0.0, le=1e6, description="lambda of the fixed strategy: r = w + lambda * c."
    )
    margin: float = Field(
        DEFAULT_MARGIN,
        gt=0.0,
        le=100.0,
        description="Penalty margin, as a fraction of the group's writing spread.",
    )
    truncated_penalty: float = Field(
        0.0,
        ge=0.0,
        le=100.0,
        description="Subtracted from the writing score of a response cut at the length limit, "
        "before mixing (0 = off); the dynamic penalty then still puts every violator below its "
        "group's mean.",
    )
    writing: WritingReward = Field(default_factory=GenRMReward)
    verifier: VerifierConfig = Field(default_factory=VerifierConfig)

    @model_validator(mode="after")
    def _writing_needed(self):
        if self.strategy != "verifier_only" and self.writing.type == "none":
            raise ValueError(
                f"writing.type: none leaves strategy {self.strategy!r} without a writing reward; "
                "use genrm or strategy verifier_only"
            )
        return self


# --------------------------------------------------------------------------- algorithm


class ClipConfig(Strict):
    """PPO ratio clipping, asymmetric (clip-higher, DAPO)."""

    low: float = Field(0.2, ge=0.0, lt=1.0, description="eps_low: ratio floor is 1 - low.")
    high: float = Field(0.28, ge=0.0, le=10.0, description="eps_high: ratio ceiling is 1 + high.")
    dual: float | None = Field(
        None, gt=1.0, description="Dual-clip bound c for negative advantages (off when unset)."
    )


class KLConfig(Strict):
    """KL regularisation towards the frozen reference model."""

    beta: float = Field(
        0.0, ge=0.0, le=100.0, description="Coefficient; 0 skips the reference model entirely."
    )
    estimator: Literal["k1", "k2", "k3"] = Field("k3", description="Per-token estimator.")
    in_loss: bool = Field(
        True,
        description="true: beta * KL added to the loss; "
        "false: beta * sum k1 subtracted from the reward.",
    )
    reference_micro_batch: int | None = Field(
        None,
        ge=1,
        le=65536,
        description="Rows per forward of the reference model (null: learner.micro_batch_size). "
        "It runs without a backward, so a forward holds one layer's activations at a time and "
        "its logits in chunks: larger forwards cost little memory and run faster.",
    )
    reference_in_file: bool = Field(
        True,
        description="A reference model on CPU keeps its weights in a private mapping of an "
        "unlinked file under $RLMR_CACHE and hands the pages back after every call: between "
        "calls they sit in the page cache, which the system reclaims under pressure, instead of "
        "in the process (270 MB for SmolLM2-135M in bf16, while the learner peaks). Ignored on "
        "GPU, and where $RLMR_CACHE is on a RAM file system (tmpfs) or cannot be written.",
    )


class AlgoConfig(Strict):
    """GRPO objective."""

    advantage: Literal["group_norm", "dr_grpo", "rloo"] = "group_norm"
    eps: float = Field(1e-6, ge=0.0, le=1.0, description="Added to the group std in group_norm.")
    clip: ClipConfig = Field(default_factory=ClipConfig)
    kl: KLConfig = Field(default_factory=KLConfig)
    loss_aggregation: Literal["token_mean", "seq_mean_token_mean"] = "token_mean"
    log_ratio_clamp: float = Field(
        20.0, gt=0.0, le=100.0, description="Clamp on log-ratios so exp() never overflows."
    )
    behaviour_weight_cap: float | None = Field(
        None,
        gt=0.0,
        le=100.0,
        description="C: weight each token's loss by min(exp(logp_prox - logp_rollout), C), "
        "correcting samples from older weights (rollout.max_staleness > 0) or a "
        "lower-precision engine; unset: no correction.",
    )

    @model_validator(mode="after")
    def _kl_estimator_for_reward(self):
        if self.kl.beta > 0 and not self.kl.in_loss and self.kl.estimator != "k1":
            raise ValueError(
                "kl.estimator: must be k1 when kl.in_loss is false (KL in reward uses k1)"
            )
        return self


# --------------------------------------------------------------------------- learner


class LearnerConfig(Strict):
    """The DeepSpeed policy learner."""

    zero_stage: int = Field(0, ge=0, le=3, description="DeepSpeed ZeRO stage.")
    lr: float = Field(1e-6, gt=0.0, le=1.0)
    weight_decay: float = Field(0.0, ge=0.0, le=1.0)
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = Field(0, ge=0)
    grad_clip: float = Field(1.0, gt=0.0, le=1e6)
    micro_batch_size: int = Field(
        4, ge=1, le=65536, description="Sequences per forward/backward on one rank."
    )
    updates_per_step: int = Field(
        1, ge=1, le=1024, description="Optimizer steps per rollout batch (1 = strictly on-policy)."
    )
    backend: Literal["auto", "gloo", "nccl"] = Field(
        "auto", description="auto = nccl with GPUs, gloo on CPU."
    )
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


# --------------------------------------------------------------------------- outputs


class WandbConfig(Strict):
    """Weights & Biases; the API key comes from WANDB_API_KEY in the environment only."""

    enabled: bool = False
    project: str = "rlmr"
    entity: str | None = None


class LoggingConfig(Strict):
    """Run directory, metrics, samples."""

    output_dir: str = Field(
        "runs", description="Parent of run directories: a local path or an fsspec URI."
    )
    run_name: str = Field("run", min_length=1, pattern=r"^[A-Za-z0-9._-]+$")
    samples_per_step: int = Field(
        4, ge=0, le=4096, description="Full responses written to samples.jsonl per step."
    )
    tensorboard: bool = True
    wandb: WandbConfig = Field(default_factory=WandbConfig)
    progress_bar: bool = True


class CheckpointConfig(Strict):
    """Atomic checkpoints: policy (HF format), optimizer, data position, RNG."""

    every: int = Field(0, ge=0, description="Save every N steps (0 = only at the end).")
    keep_last: int = Field(2, ge=1, le=1000)
    save_optimizer: bool = True


class EvalSuitesConfig(Strict):
    """Benchmarks run at every evaluation of a policy run (`trainer.eval_every`, the last step,
    and step 0 with `eval_at_start`) by the code `rlmr eval` runs, on the rollout engines' current
    weights; figures are logged as `eval/<suite>/<figure>`, files go to `evals/step_N/<suite>/`."""

    suites: list[Literal["ifeval", "ifbench"]] = Field(
        default_factory=list,
        description="Suites to run, e.g. [ifeval, ifbench] (none by default).",
    )
    limit: int | None = Field(
        100, ge=1, description="Only the first N prompts of each suite (null = all of them)."
    )
    max_new_tokens: int = Field(512, ge=1, le=65536, description="Response budget.")


class TrainerConfig(Strict):
    """The outer loop."""

    steps: int = Field(100, ge=1, le=10_000_000)
    seed: int = Field(0, ge=0)
    eval_every: int = Field(
        0, ge=0, description="Evaluate on the held-out prompts every N steps (0 = off)."
    )
    eval_at_start: bool = Field(
        True, description="Evaluate before the first step (the step-0 baseline)."
    )
    eval_samples_per_prompt: int = Field(
        2, ge=1, le=256, description="Responses sampled per held-out prompt."
    )
    max_wall_minutes: float | None = Field(
        None,
        gt=0.0,
        description="Stop after the step that crosses this wall-clock budget "
        "(then eval + checkpoint).",
    )
    eval_temperature: float | None = Field(
        None, ge=0.0, le=5.0, description="Held-out sampling temperature (rollout's when unset)."
    )
    eval: EvalSuitesConfig = Field(default_factory=EvalSuitesConfig)
    max_skipped_steps: int = Field(
        3,
        ge=1,
        le=1000,
        description="Stop the run after this many steps in a row were skipped for NaN/inf "
        "(in writing scores, log-probs or gradients); their samples are saved first.",
    )


class RLMRConfig(Strict):
    """A whole training run."""

    task: Literal["policy", "judge"] = Field(
        "policy",
        description="policy: train a writer with RLMR; judge: train the generative judge (RLCS), "
        "with preference pairs in data.train / data.eval.",
    )
    model: ModelConfig
    data: DataConfig
    judge: JudgeTaskConfig = Field(default_factory=JudgeTaskConfig)
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
            raise ValueError(
                "rollout.engine.type: vllm needs GPUs but cluster.gpus_per_node is 0; "
                "use type: hf on CPU"
            )
        if (
            self.reward.writing.type == "genrm"
            and self.reward.writing.engine.type == "vllm"
            and not gpu
        ):
            raise ValueError(
                "reward.writing.engine.type: vllm needs GPUs but cluster.gpus_per_node is 0"
            )
        engines = [("rollout", self.rollout.engine)]
        if self.reward.writing.type == "genrm":
            engines.append(("genrm", self.reward.writing.engine))
        for role, engine in engines:
            tp, gpus = getattr(engine, "tensor_parallel_size", 1), getattr(self.cluster, role).gpus
            if engine.type == "vllm" and gpu and (gpus != tp if tp > 1 else gpus > 1):
                raise ValueError(
                    f"cluster.{role}.gpus: {gpus:g} GPUs per replica, but its vLLM engine has "
                    f"tensor_parallel_size {tp}: a replica needs exactly one GPU per "
                    "tensor-parallel rank (or a share of one GPU at size 1)"
                )
        if self.learner.backend == "nccl" and not gpu:
            raise ValueError(
                "learner.backend: nccl needs GPUs but cluster.gpus_per_node is 0; use gloo or auto"
            )
        samples = self.rollout.prompts_per_step * self.rollout.n
        per_update = (
            self.cluster.learner.replicas
            * self.learner.micro_batch_size
            * self.learner.updates_per_step
        )
        if samples % per_update:
            raise ValueError(
                "rollout.prompts_per_step: prompts_per_step * rollout.n = "
                f"{samples} responses per step must be divisible by "
                "cluster.learner.replicas * learner.micro_batch_size * learner.updates_per_step = "
                f"{per_update}"
            )
        policy = self.task == "policy"  # judge training starts no judge and no verifier
        if policy and self.reward.writing.type == "genrm" and self.cluster.genrm.replicas == 0:
            raise ValueError(
                "cluster.genrm.replicas: is 0 but reward.writing.type genrm needs a judge"
            )
        if self.uses_reference and self.cluster.reference.replicas == 0:
            raise ValueError(
                "cluster.reference.replicas: is 0 but algo.kl.beta > 0 needs the reference model"
            )
        if self.reward.verifier.soft_constraints == "engine" and self.reward.writing.type == "none":
            raise ValueError(
                "reward.verifier.soft_constraints: engine needs the judge's engine; "
                "reward.writing.type is none"
            )
        if not policy and self.judge.max_judge_len > self.model.max_model_len:
            raise ValueError(
                f"judge.max_judge_len: {self.judge.max_judge_len} exceeds model.max_model_len "
                f"{self.model.max_model_len}"
            )
        if self.data.max_prompt_tokens + self.rollout.max_new_tokens > self.model.max_model_len:
            raise ValueError(
                f"data.max_prompt_tokens: {self.data.max_prompt_tokens} + rollout.max_new_tokens "
                f"{self.rollout.max_new_tokens} exceed model.max_model_len "
                f"{self.model.max_model_len}"
            )
        if self.trainer.eval_every and not self.data.eval and not self.trainer.eval.suites:
            raise ValueError(
                "trainer.eval_every: is set but neither data.eval (held-out prompts) nor "
                "trainer.eval.suites names anything to evaluate"
            )
        if self.rollout.max_staleness and self.algo.behaviour_weight_cap is None:
            raise ValueError(
                f"rollout.max_staleness: {self.rollout.max_staleness} samples from older weights, "
                "which needs their correction: set algo.behaviour_weight_cap (e.g. 2.0)"
            )
        if self.cluster.colocate:
            if self.rollout.engine.type != "hf":
                raise ValueError(
                    f"cluster.colocate: true needs an HF rollout engine (rollout.engine.type is "
                    f"{self.rollout.engine.type}; colocating vLLM needs its sleep mode, which "
                    "rlmr does not drive)"
                )
            if self.learner.zero_stage == 3:
                raise ValueError(
                    "learner.zero_stage: 3 partitions the weights the colocated engine generates "
                    "with (cluster.colocate: true); use 0-2"
                )
            if self.rollout.max_staleness:
                raise ValueError(
                    f"rollout.max_staleness: {self.rollout.max_staleness}, but a colocated engine "
                    "(cluster.colocate: true) shares the learner's process and samples between "
                    "updates; use 0"
                )
        if self.rollout.max_staleness and not policy:
            raise ValueError("rollout.max_staleness: asynchronous rollout trains a policy only")
        if self.trainer.eval.suites and self.task != "policy":
            raise ValueError("trainer.eval.suites: benchmarks evaluate a policy (task: policy)")
        return self

    @property
    def uses_reference(self) -> bool:
        """The reference model is needed only when the KL coefficient is positive."""
        return self.algo.kl.beta > 0

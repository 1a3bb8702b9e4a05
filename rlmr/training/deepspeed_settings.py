"""What DeepSpeed is told for a policy learner: its config dict, and whether the optimizer is
offloaded to the CPU."""

from __future__ import annotations

from rlmr.config import LearnerConfig


def deepspeed_config(
    cfg: LearnerConfig, dtype: str, micro_batch: int, grad_accum: int, world_size: int
) -> dict:
    """The DeepSpeed config for this learner. The optimizer is the client's AdamW, passed
    separately, except with optimizer offload: ZeRO-Offload steps on the CPU and accepts only its
    own DeepSpeedCPUAdam, which DeepSpeed builds from the `optimizer` section declared here."""
    zero: dict = {"stage": cfg.zero_stage}
    offload = offloads_optimizer(cfg)
    if offload:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": True}
    if cfg.offload_params:
        zero["offload_param"] = {"device": "cpu", "pin_memory": True}
    if cfg.zero_stage == 3:
        zero["stage3_gather_16bit_weights_on_model_save"] = True
    ds = {
        "train_micro_batch_size_per_gpu": micro_batch,
        "gradient_accumulation_steps": grad_accum,
        "train_batch_size": micro_batch * grad_accum * world_size,
        "gradient_clipping": cfg.grad_clip,
        "zero_optimization": zero,
        "bf16": {"enabled": dtype == "bfloat16"},
        "fp16": {"enabled": dtype == "float16"},
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }
    if offload:
        # AdamW mode, and every hyperparameter the client AdamW takes (eps: torch's default).
        ds["optimizer"] = {
            "type": "AdamW",
            "params": {
                "lr": cfg.lr,
                "betas": list(cfg.betas),
                "eps": 1e-8,
                "weight_decay": cfg.weight_decay,
            },
        }
    return ds


def offloads_optimizer(cfg: LearnerConfig) -> bool:
    """Whether the optimizer states and step live on the CPU (ZeRO-Offload; never without ZeRO)."""
    return cfg.offload_optimizer and cfg.zero_stage > 0

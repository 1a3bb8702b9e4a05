"""The optimizer step of DeepSpeed's bf16/fp16 wrapper without ZeRO, fp32 gradients a slice of
parameters at a time.

Without ZeRO, DeepSpeed wraps the client optimizer in `FP16_UnfusedOptimizer`: the model holds
bf16 (or fp16) weights, the optimizer fp32 master copies. Its step converts every half-precision
gradient to fp32 first, then steps the optimizer once over all of them: for the length of the
step one fp32 gradient per weight is held beside everything else, 4 bytes a parameter (514 MiB
for SmolLM2-135M). With activation checkpointing that transient is the learner's peak: measured
in a bf16 learner on CPU (main job's shape, micro-batches of 4), the backward peaked at 2,866 MiB
RSS and the step at 3,046.

`install(optimizer)` gives such a wrapper a step that does the same arithmetic a slice at a time:
the gradients' norm and the overflow check from the half-precision gradients as DeepSpeed does,
then for each slice of about `SLICE_BYTES` of fp32 gradients: convert, unscale and clip by the
same factor, step the client optimizer (PyTorch's optimizers skip a parameter without a gradient,
so each slice steps once and each parameter's state, its own step count included, is the one
the whole step gives), drop the fp32 gradients and copy the masters back into the model's
weights. PyTorch's fused AdamW updates each tensor on its own, so the weights are bit for bit
DeepSpeed's (`tests/unit/test_master_step.py` compares them). Any other optimizer wrapper (ZeRO,
DeepSpeed's fused fp16 optimizer, LAMB) keeps its own step.
"""

from __future__ import annotations

import types

import torch

SLICE_BYTES = 64 * 2**20  # fp32 gradients held at once
# What `sliced_step` reads of the wrapper, as DeepSpeed 0.19 has it: a release without one of
# them keeps its own step.
WRAPPER_PARTS = (
    "fp16_groups",
    "fp32_groups",
    "optimizer",
    "overflow_checker",
    "mpu",
    "fused_lamb_legacy",
    "_skip_invalid_grad_norm",
    "_update_scale",
    "unscale_and_clip_grads",
)


def install(optimizer) -> bool:
    """Give DeepSpeed's `FP16_UnfusedOptimizer` the sliced step; False (nothing changed) for any
    other optimizer, and for a DeepSpeed release whose wrapper lacks a part the step reads."""
    try:
        from deepspeed.runtime.fp16.unfused_optimizer import FP16_UnfusedOptimizer
    except ImportError:  # pragma: no cover - DeepSpeed is a dependency
        return False
    if type(optimizer) is not FP16_UnfusedOptimizer:
        return False
    if not all(hasattr(optimizer, part) for part in WRAPPER_PARTS) or optimizer.fused_lamb_legacy:
        return False
    optimizer.step = types.MethodType(sliced_step, optimizer)
    return True


def slices(pairs: list, budget: int | None = None) -> list[list]:
    """`(fp32 master, half-precision weight)` pairs in runs of about `budget` (default
    `SLICE_BYTES`) bytes of fp32 gradients (a weight larger than that is a run of its own)."""
    budget = SLICE_BYTES if budget is None else budget
    runs, run, size = [], [], 0
    for master, weight in pairs:
        nbytes = master.numel() * master.element_size()
        if run and size + nbytes > budget:
            runs.append(run)
            run, size = [], 0
        run.append((master, weight))
        size += nbytes
    if run:
        runs.append(run)
    return runs


@torch.no_grad()
def sliced_step(self, closure=None):
    """`FP16_UnfusedOptimizer.step` (as in DeepSpeed 0.19) with the fp32 gradients made, used and
    dropped a slice at a time; `self` is the wrapper."""
    from deepspeed.moe.utils import split_params_grads_into_shared_and_expert_params
    from deepspeed.runtime.utils import get_global_norm, get_weight_norm, is_invalid_grad_norm

    if closure is not None:
        raise NotImplementedError("closure is not supported")
    self.overflow = self.overflow_checker.check()
    if self.overflow:
        return self._skip_invalid_grad_norm()
    norms = []
    for group in self.fp16_groups:
        grads, _ = split_params_grads_into_shared_and_expert_params(group)
        norms.append(get_weight_norm(grads, mpu=self.mpu) if grads else 0.0)
    self._global_grad_norm = get_global_norm(norm_list=norms)
    if is_invalid_grad_norm(self._global_grad_norm):
        return self._skip_invalid_grad_norm()
    self._update_scale(False)
    # The factor DeepSpeed divides every fp32 gradient by: loss scale, and the clip.
    combined = self.unscale_and_clip_grads(self._global_grad_norm, apply_scale=False)
    pairs = [
        pair
        for masters, weights in zip(self.fp32_groups, self.fp16_groups)
        for pair in zip(masters, weights)
    ]
    for run in slices(pairs):
        for master, weight in run:
            if weight.grad is None:
                master.grad = torch.zeros_like(master)
            else:
                master.grad = weight.grad.to(master.dtype)
            master.grad.mul_(1.0 / combined)
        self.optimizer.step()
        for master, weight in run:
            master.grad = None
            weight.data.copy_(master.data)
    return self.overflow

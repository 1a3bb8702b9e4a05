"""Activation checkpointing whose recomputation runs under the settings its forward ran under.

With checkpointing (`model.gradient_checkpointing: true`) each decoder layer (or the first
`model.checkpoint_layers`) keeps only its input in the forward and runs again in the backward to
rebuild what the gradient needs. The learner's forward runs under settings it enters for that
forward alone: PyTorch's math attention for a bf16 model on CPU (`logprobs.training_attention`) and
the flattened shared-prompt attention (`shared_prompt`). By the time the backward recomputes a layer
those contexts have exited, so a plain checkpoint recomputes with other kernels: PyTorch then
refuses the tensors it rebuilt (`CheckpointError`: different metadata) or, for the flattened
forward, the layer would read its keys through another attention function. Here every such setting
is entered through `forward_setting`, and `checkpoint_contexts` (the `context_fn` of PyTorch's
non-reentrant checkpoint) hands the recomputation the settings that were active when the layer first
ran.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager as ContextManager

_local = threading.local()


def _active() -> list[Callable[[], ContextManager]]:
    if not hasattr(_local, "settings"):
        _local.settings = []
    return _local.settings


@contextlib.contextmanager
def forward_setting(make: Callable[[], ContextManager]):
    """Enter `make()` for a forward; a checkpointed layer that runs inside enters a fresh
    `make()` again when the backward recomputes it."""
    with make():
        _active().append(make)
        try:
            yield
        finally:
            _active().pop()


@contextlib.contextmanager
def _entered(makers: tuple[Callable[[], ContextManager], ...]):
    with contextlib.ExitStack() as stack:
        for make in makers:
            stack.enter_context(make())
        yield


def checkpoint_contexts() -> tuple[ContextManager, ContextManager]:
    """`torch.utils.checkpoint`'s `context_fn`: called when a checkpointed layer runs forward;
    returns the forward's context (nothing to add) and the recomputation's (the settings active
    now, entered again)."""
    return contextlib.nullcontext(), _entered(tuple(_active()))


def enable_checkpointing(model, layers: int | None = None) -> None:
    """Turn on activation checkpointing in a transformers model, non-reentrant, recomputing under
    the forward's settings: in its first `layers` decoder layers (None: all of them). A layer
    left out keeps its activations for the backward (Megatron's `recompute_num_layers`): memory
    traded back for the recomputation's time."""
    kwargs = {"use_reentrant": False, "context_fn": checkpoint_contexts}
    enable = getattr(model, "activation_checkpointing_enable", None)
    if enable is not None:
        enable(activation_checkpointing_kwargs=kwargs)
    else:  # transformers before the rename
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    if layers is None:
        return
    blocks = decoder_layers(model)
    if not 0 <= layers <= len(blocks):
        raise ValueError(
            f"model.checkpoint_layers: {layers}, but the model has {len(blocks)} decoder layers"
        )
    for block in blocks[layers:]:
        block.gradient_checkpointing = False


def decoder_layers(model) -> list:
    """The model's repeated blocks that can checkpoint (transformers' `GradientCheckpointingLayer`
    subclasses), in forward order."""
    from transformers.modeling_layers import GradientCheckpointingLayer

    inner = getattr(model, "module", model)
    return [m for m in inner.modules() if isinstance(m, GradientCheckpointingLayer)]


def checkpointed_layers(model) -> int:
    """How many of the model's decoder layers recompute in the backward."""
    return sum(_checkpointed(m) for m in decoder_layers(model))


def checkpointing(model) -> bool:
    """Whether `model` (or the model a DeepSpeed engine wraps) checkpoints activations."""
    inner = getattr(model, "module", model)
    for name in ("is_activation_checkpointing", "is_gradient_checkpointing"):  # new name, old
        if hasattr(type(inner), name):
            return bool(getattr(inner, name))
    return False


def recomputes_in_forward_settings(model) -> bool:
    """Whether `model` (or the model a DeepSpeed engine wraps) recomputes each checkpointed layer
    under its forward's settings: true without checkpointing, and with `enable_checkpointing`'s;
    false for a checkpoint function set up another way."""
    if not checkpointing(model):
        return True
    inner = getattr(model, "module", model)
    funcs = [m._gradient_checkpointing_func for m in inner.modules() if _checkpointed(m)]
    return bool(funcs) and all(
        getattr(f, "keywords", {}).get("context_fn") is checkpoint_contexts for f in funcs
    )


def _checkpointed(module) -> bool:
    return bool(getattr(module, "gradient_checkpointing", False)) and hasattr(
        module, "_gradient_checkpointing_func"
    )

"""Process setup shared by every actor that runs a model."""

from __future__ import annotations

import ctypes
import functools
import os


def release_freed_memory() -> bool:
    """Hand the free pages of the C heap back to the system (glibc's `malloc_trim(0)`).

    glibc keeps freed blocks below its mmap threshold (which it raises to the
    largest block freed, up to 32 MB on 64-bit) on the heap, where the next
    allocation reuses them: what a decoding loop or a backward pass wants, since
    every block it frees it soon allocates again. A phase's transient tensors
    (KV caches, logits, activations) would then stay resident after the phase,
    on CPU through the next phase's peak in another role, so each model call of
    an actor ends with this (`releases_memory`). Handing every block of 1 MB
    and more back at each free instead (`mallopt` thresholds, this module's
    earlier setting) cost a page fault per page of every such tensor: 1.25M
    faults and 16.5-16.9 s against 80k and 11.6-12.6 s for one 16 x 64
    `generate` of SmolLM2 (bench/README.md). False where the C library is not
    glibc (nothing released)."""
    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return False
    trim(0)
    return True


def releases_memory(method):
    """An actor method that runs a model: the heap's free pages go back to the system when it
    returns (`release_freed_memory`)."""

    @functools.wraps(method)
    def call(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        finally:
            release_freed_memory()

    return call


def setup_process(device: str) -> None:
    """Threads and accelerator selection for a model-holding actor.

    Ray sets OMP_NUM_THREADS to an actor's (fractional) CPU share, which pins
    torch to one thread; on CPU the phases of a step run one after another,
    so each actor may use every core while it works.
    """
    import torch

    if device == "cpu":
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
        torch.set_num_threads(max(1, os.cpu_count() or 1))

"""Process setup shared by every actor that runs a model."""

from __future__ import annotations

import ctypes
import os

# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def return_freed_memory(threshold: int = 1 << 20) -> bool:
    """Have glibc hand blocks of `threshold` bytes and more back to the system when they are
    freed. By default glibc raises its mmap threshold to the largest block freed (up to 32 MB on
    64-bit), after which a model's transient tensors (KV caches, logits, activations) come from
    the heap and stay resident after they are freed: in the colocated SmolLM2 run that held the
    actor's peak PSS 0.3 GiB higher (4,617 MiB against 4,296, bench/README.md). False where the C
    library is not glibc (nothing changed)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, threshold)) and bool(
        mallopt(_M_TRIM_THRESHOLD, threshold)
    )


def setup_process(device: str) -> None:
    """Threads, accelerator selection and freed memory for a model-holding actor.

    Ray sets OMP_NUM_THREADS to an actor's (fractional) CPU share, which pins
    torch to one thread; on CPU the phases of a step run one after another,
    so each actor may use every core while it works, and a phase's freed
    tensors go back to the system for the next phase's process.
    """
    import torch

    if device == "cpu":
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
        torch.set_num_threads(max(1, os.cpu_count() or 1))
        return_freed_memory()

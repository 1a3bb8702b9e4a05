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


# glibc's allocator settings, read when a process starts (`rlmr train` passes them on to every
# actor when the run sets them).
MALLOC_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")

# glibc serves allocations this large and larger from the heap instead of a fresh mmap each, and
# trims the heap only when told to (`releases_memory`, at the end of each call).
LARGE_BLOCKS_ON_HEAP = {
    "MALLOC_MMAP_THRESHOLD_": str(2**30),
    "MALLOC_TRIM_THRESHOLD_": str(2**40),
}


def cpu_learner_env(cfg, environ=None) -> dict[str, str]:
    """Environment for a CPU learner rank that is not colocated: `LARGE_BLOCKS_ON_HEAP`, unless
    the run's own environment sets glibc's allocator already (`environ`: the driver's).

    A learner's update allocates and frees tensors of tens of MB (a micro-batch's logits, their
    gradients, activations) over and over; above glibc's mmap threshold (at most 32 MB by
    default) each one is a fresh mapping, faulted in page by page: 0.7-0.9M page faults an
    update of SmolLM2 (16 rows x 114 tokens, bf16) in a plain process. Kept on the heap they are
    reused within the update, and `releases_memory` hands the heap's free pages back when it
    returns: 3.4-3.6 s against 3.9-4.2 (probe), and in training 4.2-5.3 s against 5.6-7.1 for the
    learner actor's update, 100 MiB more at its peak (`bench/README.md`). Only the learner: with
    the setting on every actor, the rollout phase moved both ways (3.7-5.0 s against 4.1-4.3)
    and a colocated worker's step did not change (10.8 s against 10.7, 200 MiB more)."""
    import os

    environ = os.environ if environ is None else environ
    if cfg.cluster.colocate or cfg.cluster.learner.gpus > 0:
        return {}
    if any(k in environ for k in MALLOC_SETTINGS):
        return {}
    return dict(LARGE_BLOCKS_ON_HEAP)


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

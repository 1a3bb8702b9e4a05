"""Process setup shared by every actor that runs a model."""

from __future__ import annotations

import os


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

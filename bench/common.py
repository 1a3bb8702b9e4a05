"""What the model benchmarks (`floor.py`, `sampler.py`, `shared_prompt.py`) share."""

from __future__ import annotations

import platform
import time


def header(cfg, prompts: int, samples: int, **work) -> dict:
    """The fields a result opens with: when, on what machine (PyTorch's threads), and the work:
    the config's model, prompts x samples, and what else the script names."""
    import torch

    from rlmr.engine.loading import describe_source

    return {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads",
        "work": {
            "model": describe_source(cfg.model.source),
            "prompts": prompts,
            "samples_per_prompt": samples,
            **work,
        },
    }

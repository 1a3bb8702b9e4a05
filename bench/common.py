"""What the model benchmarks (floor, sampler, shared_prompt, gpu_smoke) share."""

from __future__ import annotations

import os
import platform
import socket
import statistics
import time


def header(cfg, prompts: int, samples: int, **work) -> dict:
    """The fields a result opens with: when, on what machine (PyTorch's threads), and the work:
    the config's model, prompts x samples, and what else the script names."""
    import torch

    from rlmr.engine.cpu_linear import cpu_model
    from rlmr.engine.loading import describe_source

    return {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.machine()}, {cpu_model()}, {torch.get_num_threads()} threads",
        "work": {
            "model": describe_source(cfg.model.source),
            "prompts": prompts,
            "samples_per_prompt": samples,
            **work,
        },
    }


def call_figures(calls: list[dict]) -> dict:
    """Medians of generate calls (`{"s": seconds, "steps": longest response}` each): seconds per
    call and milliseconds per decoding step, with the calls themselves."""
    return {
        "s_per_call": round(statistics.median(x["s"] for x in calls), 3),
        "ms_per_step": round(1000 * statistics.median(x["s"] / x["steps"] for x in calls), 1),
        "calls": calls,
    }


def one_rank_group() -> None:
    """The environment of a one-rank process group in this process (a `PolicyLearner` outside
    Ray): this machine, a free port, rank 0 of 1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK="0", WORLD_SIZE="1", LOCAL_RANK="0"
    )
    os.environ.setdefault("NCCL_CUMEM_ENABLE", "0")

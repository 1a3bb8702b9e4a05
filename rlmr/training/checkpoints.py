"""Saving and restoring a whole run's state: learner (weights, optimizer), data position, RNG.

The learner ranks write `policy/` and `optimizer/` into the run directory's
staging folder; the driver adds `rng.pt` and `trainer_state.json` (step and
data position), then `RunDir.commit_checkpoint` makes the checkpoint visible
atomically. `--resume` restores all of it, so the resumed run draws the same
prompts in the same order as an uninterrupted one.
"""

from __future__ import annotations

import json
import random

import numpy as np
import torch

from rlmr.data.prompts import PromptSampler
from rlmr.training.run_dir import RunDir, RunDirError


def save_checkpoint(run: RunDir, services, data_state: dict, step: int) -> None:
    """Collective save of the learner, then the driver's state (`data_state`: the prompt sampler's
    position after step `step`); visible only once complete."""
    staging = run.staging_dir(step)
    services.save(str(staging), client_state={"step": step}, remote=run.checkpoint_uri(step))
    torch.save(
        {
            "python": random.getstate(),
            "numpy": np.random.get_state(),
            "torch": torch.get_rng_state(),
        },
        staging / "rng.pt",
    )
    run.commit_checkpoint(staging, step, {"step": step, "data": data_state})


def restore_checkpoint(run: RunDir, services, sampler: PromptSampler) -> int:
    """Load the latest complete checkpoint into the learner, the sampler and the RNGs; returns its
    step."""
    ckpt = run.latest_checkpoint()
    if not (ckpt / "optimizer").exists():
        raise RunDirError(
            f"--resume: {ckpt} holds no optimizer state (checkpoint.save_optimizer was false), "
            f"so training cannot continue exactly; start a new run from its policy/ weights instead"
        )
    state = json.loads((ckpt / "trainer_state.json").read_text())
    services.load(str(ckpt), remote=run.checkpoint_uri(state["step"]))
    sampler.load_state_dict(state["data"])
    rng = torch.load(ckpt / "rng.pt", weights_only=False)
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])
    torch.set_rng_state(rng["torch"])
    run.truncate_after(state["step"])
    return int(state["step"])

"""Benchmark: scoring streamed per rollout replica against scoring the whole batch (slow judge).

    python bench/streaming.py                     # 4 rollout and 2 judge replicas, 64 x 8
    python bench/streaming.py --tail 0 --steps 4  # replicas that all finish together

The real `run_training` and `actors.services.RayServices` dispatch run over Ray actors
that sleep a modelled time (`bench/ray_overhead.py`'s `ModelledRayServices`). Rollout
replica r of R takes `ms_rollout x its samples x (1 + tail x r / (R - 1))`: replicas
finish one after another, as they do when their batches hold responses of different
lengths. Each judge replica takes `ms_judge` per sample it is sent; the verifier, the
reference and the learner answer at once. Two runs, alternating:

- `streamed`: `RayServices` as it is: each rollout replica's groups go to the verifier
  and the judge as soon as it answers (`sample_chunks`, `score_async`);
- `batch`: the same services without the streaming calls, so the driver samples the
  whole batch, then scores it (what every loop did before).

Prints one JSON object: median step time of each (first step left out), their ratio, the
rollout and reward phases, and the two times the model predicts.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import ray  # noqa: E402
from pipeline import _config  # noqa: E402
from ray_overhead import INSTANT, ModelledRayServices, emit, start_ray  # noqa: E402

from rlmr.core.records import PromptRow  # noqa: E402
from rlmr.training.driver import run_training  # noqa: E402
from rlmr.training.run_dir import RunDir  # noqa: E402


class BatchScoring:
    """Services without the streaming calls: the driver then samples, then scores, the batch."""

    def __init__(self, services):
        self._services = services

    def __getattr__(self, name):
        if name in ("sample_chunks", "score_async"):
            raise AttributeError(name)
        return getattr(self._services, name)


def latencies(args) -> dict[str, list[dict]]:
    def phase(name: str, per_sample_s: float) -> dict:
        return {**INSTANT, name: (0.0, per_sample_s)}

    r = args.rollout_replicas
    slow = [1 + args.tail * i / max(r - 1, 1) for i in range(r)]
    return {
        "rollout": [phase("rollout", args.ms_rollout / 1e3 * f) for f in slow],
        "genrm": [phase("reward", args.ms_judge / 1e3) for _ in range(args.judge_replicas)],
    }


def predicted(args) -> dict:
    """The step's rollout + reward time by the model, batch and streamed (verifier instant)."""
    r, j = args.rollout_replicas, args.judge_replicas
    share = args.prompts * args.n / r  # samples per rollout replica
    done = sorted(
        share * args.ms_rollout / 1e3 * (1 + args.tail * i / max(r - 1, 1)) for i in range(r)
    )
    judge_share = share / j * args.ms_judge / 1e3  # one share spread over the judge replicas
    batch = done[-1] + args.prompts * args.n / j * args.ms_judge / 1e3
    free = 0.0  # when the judges are free again
    for t in done:
        free = max(free, t) + judge_share
    return {"batch_s": round(batch, 2), "streamed_s": round(free, 2)}


def run(args, streamed: bool) -> list[dict]:
    rows = [PromptRow(id=f"p{i}", prompt=f"Write piece {i}.") for i in range(max(args.prompts, 64))]
    workers = max(args.rollout_replicas, args.judge_replicas)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = _config(Path(tmp), args.prompts, args.n, args.steps, 0)
        services = ModelledRayServices(cfg, workers, latencies(args))
        try:
            logged = run_training(
                cfg, services if streamed else BatchScoring(services), RunDir(cfg), rows
            )
        finally:
            services.shutdown()
    return logged[1:]  # the first step warms the actors up


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--prompts", type=int, default=64)
    p.add_argument("--n", type=int, default=8)
    p.add_argument("--rollout-replicas", type=int, default=4)
    p.add_argument("--judge-replicas", type=int, default=2)
    p.add_argument("--ms-rollout", type=float, default=20.0, help="per sample, fastest replica")
    p.add_argument("--ms-judge", type=float, default=15.0, help="per sample")
    p.add_argument("--tail", type=float, default=1.0, help="slowest replica takes 1 + tail times")
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--rounds", type=int, default=2, help="alternating streamed / batch runs")
    p.add_argument("--out", type=Path, help="also write the JSON here")
    args = p.parse_args(argv)
    start_ray()
    steps = {"streamed": [], "batch": []}
    try:
        for _ in range(args.rounds):
            for name in ("streamed", "batch"):
                steps[name] += run(args, name == "streamed")
                print(
                    f"{name}: {[round(s['time/step_s'], 2) for s in steps[name]]}", file=sys.stderr
                )
    finally:
        ray.shutdown()

    def med(name: str, key: str) -> float:
        return round(statistics.median(s[key] for s in steps[name]), 3)

    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "step_s": {name: med(name, "time/step_s") for name in steps},
        "rollout_s": {name: med(name, "time/rollout_s") for name in steps},
        "reward_s": {name: med(name, "time/reward_s") for name in steps},
        "streamed_over_batch": round(
            med("streamed", "time/step_s") / med("batch", "time/step_s"), 3
        ),
        "predicted_rollout_plus_reward": predicted(args),
        "measured_steps": {name: len(s) for name, s in steps.items()},
    }
    emit(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

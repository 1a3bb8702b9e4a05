"""Benchmark: what Ray adds to a step, with 1 to 8 workers per role.

    python bench/ray_overhead.py                          # 512 prompts x 16, 1 2 4 8 workers
    python bench/ray_overhead.py --prompts 64 --workers 1 4 --steps 3

The real `run_training` drives the real `actors.services.RayServices` dispatch (rollout
`map`, verifier and judge `map_async` side by side, reference `call_each`, the learner
group's sharded `update`, weight export and load) over Ray actors that answer at once with
`bench/pipeline.py`'s synthetic groups (prompt 64 tokens, responses 256, rollout log-probs,
verdicts, scores): one actor per worker per role, so every group, token batch and shard is
serialized and crosses a process boundary as in a real run. The same work then runs
in-process (`bench/pipeline.py`'s services, no Ray); the difference is Ray's cost. Both are
reported per step and as a share of a modelled step of the same size (by default 8 ms rollout
+ 3 ms reward + 2 ms reference + 8 ms update per sample and a 1 s weight sync, as in
`bench/pipeline.py`), which is the step a cluster of that size would otherwise take.
"""

from __future__ import annotations

import argparse
import json
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
from pipeline import ModelledServices, _config  # noqa: E402

from actors.group import ActorGroup  # noqa: E402
from actors.learner import LearnerGroup  # noqa: E402
from actors.services import RayServices  # noqa: E402
from rlmr.core.records import PromptRow  # noqa: E402
from rlmr.training.driver import run_training  # noqa: E402
from rlmr.training.run_dir import RunDir  # noqa: E402

INSTANT = {k: (0.0, 0.0) for k in ("rollout", "reward", "reference", "update", "sync")}


@ray.remote(num_cpus=0)
class ModelledWorker:
    """Any role's worker, answering as `ModelledServices` does (instantly, unless given
    latencies)."""

    def __init__(self, latency=None):
        self.services = ModelledServices(latency or INSTANT)

    def sample(self, rows, params):
        return self.services.sample(rows, params)

    def check(self, groups):
        return [s.verdicts for s in self.services.score(groups, judge=False)]

    def score(self, groups):
        return [s.writing for s in self.services.score(groups)]

    def logprobs(self, tokens):
        return self.services.reference_logprobs(tokens)

    def address(self):
        return "127.0.0.1", 0

    def setup(self, rank, addr, port):
        return None

    def update(self, shard):
        return self.services.update_policy(shard)

    def export_weights(self):
        import numpy as np

        return ray.put({"w": (np.zeros(4, dtype=np.float32), "float32")}), 1

    def load_weights(self, arrays):
        return len(arrays)

    def save(self, directory, client_state, remote=None):
        return self.services.save(directory, client_state, remote)

    def load(self, directory, remote=None):
        return self.services.load(directory, remote)


class ModelledRayServices(RayServices):
    """`RayServices`' dispatch (inherited) over `workers` modelled actors per role.

    `latency`: role -> the latency of each of its replicas (`ModelledServices`' phase ->
    (fixed s, s per sample)); roles not given answer at once.
    """

    def __init__(self, cfg, workers: int, latency: dict[str, list[dict]] | None = None):
        self.cfg, self.nccl_sync, self.pad_token_id = cfg, False, 0
        latency = latency or {}

        def group(role: str) -> ActorGroup:
            per_replica = latency.get(role, [None] * workers)
            return ActorGroup([ModelledWorker.remote(lat) for lat in per_replica])

        self.learner = LearnerGroup(group("learner"))
        self.rollout, self.verifier = group("rollout"), group("verifier")
        self.genrm, self.reference = group("genrm"), group("reference")
        self.sync_weights()

    def shutdown(self) -> None:
        for group in (self.learner.ranks, self.rollout, self.verifier, self.genrm, self.reference):
            group.kill()


def _steps(services_for, prompts: int, n: int, steps: int) -> list[float]:
    rows = [PromptRow(id=f"p{i}", prompt=f"Write piece {i}.") for i in range(max(prompts, 64))]
    with tempfile.TemporaryDirectory() as tmp:
        cfg = _config(Path(tmp), prompts, n, steps, 0)
        services = services_for(cfg)
        try:
            logged = run_training(cfg, services, RunDir(cfg), rows)
        finally:
            getattr(services, "shutdown", lambda: None)()
    return [r["time/step_s"] for r in logged[1:]]  # step 1 warms the actors up


def start_ray() -> None:
    """A private local Ray on this machine's CPUs: no dashboard, workers' logs kept off stdout."""
    ray.init(
        num_cpus=os.cpu_count(),
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
    )


def emit(result: dict, out: Path | None) -> None:
    """The benchmark's JSON on stdout, and in `out` when given (Ray's own warnings can reach
    stdout, so a redirected stdout may not be clean JSON)."""
    json.dump(result, sys.stdout, indent=2)
    print()
    if out:
        out.write_text(json.dumps(result, indent=2) + "\n")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--prompts", type=int, nargs="+", default=[512])
    p.add_argument("--n", type=int, default=16)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--ms-per-sample", type=float, default=21.0, help="modelled, all phases")
    p.add_argument("--sync-s", type=float, default=1.0)
    p.add_argument(
        "--out", type=Path, help="also write the JSON here (Ray's own warnings may reach stdout)"
    )
    args = p.parse_args(argv)
    start_ray()
    rows = []
    try:
        for prompts in args.prompts:
            samples = prompts * args.n
            modelled = samples * args.ms_per_sample / 1e3 + args.sync_s
            local = statistics.median(
                _steps(lambda cfg: ModelledServices(INSTANT), prompts, args.n, args.steps)
            )
            for workers in args.workers:
                started = time.perf_counter()
                times = _steps(
                    lambda cfg, w=workers: ModelledRayServices(cfg, w), prompts, args.n, args.steps
                )
                step = statistics.median(times)
                rows.append(
                    {
                        "prompts": prompts,
                        "samples_per_step": samples,
                        "workers_per_role": workers,
                        "step_s_with_ray": round(step, 3),
                        "step_s_in_process": round(local, 3),
                        "ray_s": round(step - local, 3),
                        "modelled_step_s": round(modelled, 1),
                        "overhead_share": round(step / (modelled + step), 4),
                        "wall_s": round(time.perf_counter() - started, 1),
                    }
                )
                print(json.dumps(rows[-1]), file=sys.stderr)
    finally:
        ray.shutdown()
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "modelled_ms_per_sample": args.ms_per_sample,
        "rows": rows,
    }
    emit(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: the memory a local `rlmr train` holds besides its model processes.

    python bench/ray_memory_floor.py
    python bench/ray_memory_floor.py --step bench/results/perf/vs_trl-2x8x96-bf16-chunked.json

Reads the config's prompt files as `rlmr train` does (`rlmr.cli.train.prompt_sets`), starts Ray as
`rlmr train` without `--address` does (`init_ray`: no dashboard UI, no prestarted worker), imports
what the driver imports, starts the run's constraint verifier
(`actors.verifier.VerifierWorker` with the main job's `reward.verifier` section, warmed up as in a
run) and an actor that does nothing, then reads the proportional memory (PSS: each shared page
split among the processes that map it, so the sum is what the tree holds) of every process of the
tree: the driver, Ray's daemons (GCS, raylet, dashboard head and agent, runtime-env agent,
monitors), the two actors. No model is loaded: what it prints is the floor a run pays before its
first weight, whatever the model's size. A colocated run (`cluster.colocate`) checks constraints
in its learner's process since 12-03: its floor is the driver and the daemons, without the
verifier actor.

`--step` reads a `vs_trl.py` result and sets the floor beside it: the colocated variant's tree at
its peak, its model process, and TRL's one process. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.vs_trl import PeakRSS  # noqa: E402

DAEMONS = ("gcs_server", "raylet", "dashboard", "DashboardAgent", "RuntimeEnvAgent", "monitor")


def pss_mib(pid: int | None = None) -> int:
    import psutil

    return round(psutil.Process(pid).memory_full_info().pss / 2**20)


def tree_pss() -> dict[str, int]:
    """PSS in MiB of this process and every descendant, by process label."""
    import psutil

    me = psutil.Process()
    out = {}
    for p in [me, *me.children(recursive=True)]:
        try:
            label = "driver" if p.pid == me.pid else PeakRSS._label(p)
            out[f"{label} [{p.pid}]"] = round(p.memory_full_info().pss / 2**20)
        except psutil.Error:
            continue
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def measure(config: str, settle_s: float) -> dict:
    import ray

    from rlmr.config import load_config

    cfg = load_config(REPO / config)
    bare = pss_mib()
    from rlmr.cli.train import init_ray, prompt_sets

    prompt_sets(cfg)  # the prompt files read and checked, as `rlmr train` does before Ray
    init_ray(None, cfg)
    import actors.services  # noqa: F401  (what the driver of a run imports)
    import rlmr.training.driver  # noqa: F401
    from actors.verifier import VerifierWorker

    @ray.remote(num_cpus=0)
    class Empty:
        def pid(self) -> int:
            return os.getpid()

    verifier = VerifierWorker.remote(cfg.reward.verifier)
    empty = Empty.remote()
    verifier_pid = ray.get(verifier.info.remote())["pid"]
    empty_pid = ray.get(empty.pid.remote())
    time.sleep(settle_s)  # the daemons' start-up work done
    by_process = tree_pss()
    ray.shutdown()

    def total(keep) -> int:
        return sum(v for k, v in by_process.items() if keep(k))

    def pid_of(label: str) -> int:
        return int(label.rsplit("[", 1)[1].rstrip("]"))

    daemons = total(lambda k: any(d in k for d in DAEMONS))
    verifier_mib = total(lambda k: pid_of(k) == verifier_pid)
    empty_mib = total(lambda k: pid_of(k) == empty_pid)
    driver = total(lambda k: k.startswith("driver"))
    return {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "config": config,
        "pss_mib": {
            "driver_before_ray": bare,
            "driver": driver,
            "ray_daemons": daemons,
            "verifier_actor": verifier_mib,
            "empty_actor": empty_mib,
            "floor": driver + daemons + verifier_mib,
        },
        "by_process_mib": by_process,
    }


def beside_step(result: dict, path: str) -> dict:
    """The floor next to a vs_trl result's colocated tree and TRL's process."""
    step = json.loads(Path(path).read_text())
    colocated = step["variants"]["colocated"]
    workers = {k: v for k, v in colocated["pss_by_process_mib"].items() if "ColocatedWorker" in k}
    worker = max(workers.values())
    tree = round(colocated["peak_pss_gib"] * 1024)
    trl = round(step["trl"]["peak_pss_gib"] * 1024)
    return {
        "result": path,
        "colocated_tree_mib": tree,
        "colocated_model_process_mib": worker,
        "colocated_tree_besides_model_mib": tree - worker,
        "trl_mib": trl,
        "floor_mib": result["pss_mib"]["floor"],
        "model_process_below_trl_mib": trl - worker,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--config", default="configs/smollm2-cpu.yaml")
    p.add_argument("--settle", type=float, default=5.0, help="seconds before reading")
    p.add_argument("--step", default=None, help="a vs_trl.py result to set beside the floor")
    args = p.parse_args(argv)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    result = measure(args.config, args.settle)
    if args.step:
        result["beside_step"] = beside_step(result, args.step)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

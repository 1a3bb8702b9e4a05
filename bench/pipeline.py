"""Benchmark: the training loop's own cost, and what asynchronous rollout saves, with workers
that take a modelled time.

    python bench/pipeline.py                       # both parts, JSON on stdout
    python bench/pipeline.py --part overlap --steps 6
    python bench/pipeline.py --part overhead --prompts 64 128 256 512 1024

The real `rlmr.training.driver.run_training` runs over in-process `Services`
whose calls sleep for a modelled time and return synthetic groups of the
requested size (prompt 64 tokens, responses 256, rollout log-probs, verdicts,
writing scores), so everything the driver itself does is measured: group
bookkeeping, token batches, reward mixing, advantages, metrics, samples,
checkpoints, logs.

- `overhead` (synchronous loop): the workers answer at once, so the measured step time is the
  driver's own; from 64 to 1024 prompts x 16 samples, as a share of a modelled step whose
  latencies scale with the samples (defaults: rollout 8 ms, reward 3 ms, reference 2 ms, update
  8 ms per sample; weight sync 1 s), roughly a 7B policy on a few GPU nodes. (In the
  synchronous loop nothing of the driver overlaps a worker, so sleeping would only add the
  modelled time.) Ray's own cost (one actor call per worker per phase) is not in this figure:
  the workers here are in-process.
- `overlap`: the same work at `rollout.max_staleness` 0, 1 and 2 with fixed latencies; the
  median step time against the sum of the phases (synchronous) and the larger of the two
  halves (rollout side: sample + score + reference; learner side: update + sync).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from rlmr.config import load_config  # noqa: E402
from rlmr.core.records import (  # noqa: E402
    ConstraintOutcome,
    Group,
    PromptRow,
    Response,
    ScoredGroup,
    Verdicts,
    WritingScores,
)
from rlmr.training.driver import run_training  # noqa: E402
from rlmr.training.run_dir import RunDir  # noqa: E402

PROMPT_TOKENS, RESPONSE_TOKENS = 64, 256


class ModelledServices:
    """`Services` whose calls sleep `latency[phase]` seconds (fixed + per sample)."""

    pad_token_id = 0

    def __init__(self, latency: dict[str, tuple[float, float]]):
        self.latency = latency
        self.slept = 0.0  # all sleeps of the current measurement
        self._lock = __import__("threading").Lock()

    def _sleep(self, phase: str, samples: int) -> None:
        fixed, per_sample = self.latency[phase]
        seconds = fixed + per_sample * samples
        time.sleep(seconds)
        with self._lock:
            self.slept += seconds

    def sample(self, rows, params):
        self._sleep("rollout", len(rows) * params.n)
        out = []
        for k, row in enumerate(rows):
            responses = tuple(
                Response(
                    f"{'ok ' if i % 2 else ''}response {i} to {row.id}",
                    tuple(range(1, RESPONSE_TOKENS - (i * 7 + k) % 64 + 1)),
                    tuple(-1.0 - 0.001 * j for j in range(RESPONSE_TOKENS - (i * 7 + k) % 64)),
                    "stop",
                )
                for i in range(params.n)
            )
            out.append(Group(row, row.prompt, tuple(range(1, PROMPT_TOKENS + 1)), responses))
        return out

    def score(self, groups, judge=True):
        self._sleep("reward", sum(len(g.responses) for g in groups))
        scored = []
        for g in groups:
            passed = tuple("ok" in t for t in g.texts)
            verdicts = Verdicts(
                passed=passed,
                passed_fraction=tuple(float(p) for p in passed),
                details=tuple((ConstraintOutcome("rule", 0, p),) for p in passed),
            )
            writing = WritingScores(tuple((len(t) % 17) / 17 for t in g.texts)) if judge else None
            scored.append(ScoredGroup(g, verdicts, writing))
        return scored

    def reference_logprobs(self, tokens):
        self._sleep("reference", len(tokens))
        return torch.full(tokens.rollout_logprobs.shape, -1.2) * tokens.response_mask

    def update_policy(self, batch):
        self._sleep("update", len(batch))
        return {"pg_loss": 0.0, "grad_norm": 1.0, "entropy": 1.0, "kl": 0.0}

    def sync_weights(self):
        self._sleep("sync", 0)

    def save(self, directory, client_state, remote=None):
        Path(directory, "learner.json").write_text(json.dumps(client_state))
        Path(directory, "optimizer").mkdir(exist_ok=True)

    def load(self, directory, remote=None):
        return json.loads(Path(directory, "learner.json").read_text())


def _config(out: Path, prompts: int, n: int, steps: int, staleness: int):
    out.mkdir(parents=True, exist_ok=True)
    (out / "c.yaml").write_text("{}\n")
    sets = [
        "model.source={type: tiny}",
        "data.train=x",
        f"logging.output_dir={out}",
        "logging.progress_bar=false",
        "logging.tensorboard=false",
        f"rollout.n={n}",
        f"rollout.prompts_per_step={prompts}",
        f"learner.micro_batch_size={n}",
        "algo.kl.beta=0.04",
        f"trainer.steps={steps}",
        "trainer.eval_every=0",
        "trainer.eval_at_start=false",
        f"checkpoint.every={steps}",
        "model.max_model_len=4096",
    ]
    if staleness:
        sets += [f"rollout.max_staleness={staleness}", "algo.behaviour_weight_cap=2.0"]
    return load_config(out / "c.yaml", sets)


def _run(latency, prompts, n, steps, staleness) -> tuple[list[float], float]:
    rows = [PromptRow(id=f"p{i}", prompt=f"Write piece {i}.") for i in range(max(prompts, 64))]
    services = ModelledServices(latency)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = _config(Path(tmp), prompts, n, steps, staleness)
        logged = run_training(cfg, services, RunDir(cfg), rows)
    return [r["time/step_s"] for r in logged], services.slept


def overhead(args) -> dict:
    latency = {
        "rollout": (0.0, args.ms_rollout / 1e3),
        "reward": (0.0, args.ms_reward / 1e3),
        "reference": (0.0, args.ms_reference / 1e3),
        "update": (0.0, args.ms_update / 1e3),
        "sync": (args.sync_s, 0.0),
    }
    instant = {k: (0.0, 0.0) for k in latency}
    rows = []
    for prompts in args.prompts:
        samples = prompts * args.n
        t0 = time.perf_counter()
        times, _ = _run(instant, prompts, args.n, args.steps, 0)
        wall = time.perf_counter() - t0
        modelled = sum(f + p * samples for f, p in latency.values())
        driver = statistics.median(times)
        rows.append(
            {
                "prompts": prompts,
                "samples_per_step": samples,
                "driver_s_per_step": round(driver, 3),
                "driver_ms_per_sample": round(driver / samples * 1e3, 3),
                "modelled_step_s": round(modelled, 1),
                "driver_share": round(driver / (modelled + driver), 4),
                # the whole loop (logs, samples, the final checkpoint and plot) per step
                "loop_s_per_step": round(wall / args.steps, 3),
                "loop_share": round(wall / args.steps / (modelled + wall / args.steps), 4),
            }
        )
        print(json.dumps(rows[-1]), file=sys.stderr)
    return {"latency_ms_per_sample": {k: v[1] * 1e3 for k, v in latency.items()}, "rows": rows}


def overlap(args) -> dict:
    half = args.phase_s
    latency = {  # rollout side: sample + score + reference; learner side: update + sync
        "rollout": (half * 0.6, 0.0),
        "reward": (half * 0.3, 0.0),
        "reference": (half * 0.1, 0.0),
        "update": (half * 0.9, 0.0),
        "sync": (half * 0.1, 0.0),
    }
    rollout_side = sum(latency[k][0] for k in ("rollout", "reward", "reference"))
    learner_side = sum(latency[k][0] for k in ("update", "sync"))
    out = {
        "phases_s": {k: v[0] for k, v in latency.items()},
        "sum_s": rollout_side + learner_side,
        "max_s": max(rollout_side, learner_side),
        "runs": [],
    }
    for k in (0, 1, 2):
        times, _ = _run(latency, 8, 4, args.steps, k)
        steady = times[1:]  # the first step of a pipelined run has nothing sampled ahead
        out["runs"].append(
            {
                "max_staleness": k,
                "median_step_s": round(statistics.median(steady), 3),
                "vs_sum": round(statistics.median(steady) / out["sum_s"], 3),
            }
        )
        print(json.dumps(out["runs"][-1]), file=sys.stderr)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--part", choices=["overhead", "overlap", "both"], default="both")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--n", type=int, default=16, help="samples per prompt (overhead)")
    p.add_argument("--prompts", type=int, nargs="+", default=[64, 128, 256, 512, 1024])
    p.add_argument("--ms-rollout", type=float, default=8.0)
    p.add_argument("--ms-reward", type=float, default=3.0)
    p.add_argument("--ms-reference", type=float, default=2.0)
    p.add_argument("--ms-update", type=float, default=8.0)
    p.add_argument("--sync-s", type=float, default=1.0)
    p.add_argument("--phase-s", type=float, default=1.0, help="each half's seconds (overlap)")
    args = p.parse_args(argv)
    result = {
        "machine": f"{platform.machine()}, {__import__('os').cpu_count()} CPUs",
        "date": time.strftime("%Y-%m-%d"),
    }
    if args.part in ("overhead", "both"):
        result["overhead"] = overhead(args)
    if args.part in ("overlap", "both"):
        result["overlap"] = overlap(args)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

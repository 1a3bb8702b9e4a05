"""Benchmark: where a policy learner's memory peaks in an update, phase by phase.

    python bench/learner_memory.py                        # bf16, the main job's shape
    python bench/learner_memory.py --dtype float32 --prompts 4 --n 4 --tokens 64

One `PolicyLearner` (DeepSpeed, one rank, no Ray) on the embedded default model updates on
`--prompts` x `--n` rows of `--prompt-tokens` + up to `--tokens` tokens in micro-batches of
`--micro`, `--updates` times. A thread reads the process's resident memory every 2 ms and keeps
the largest value of each phase: the forward (log-probs), the backward, the optimizer step (the
engine's `step()`, the optimizer's only at the last micro-batch) and the time between updates.
Each arm is a fresh process, so high-water marks do not carry over:

- `keep`: activations kept for the backward (rlmr's default);
- `checkpointing`: `model.gradient_checkpointing: true` (layers recomputed in the backward);
- `checkpointing, deepspeed step`: the same with DeepSpeed's own bf16 step, which makes every
  fp32 gradient at once (`rlmr.training.master_step` replaced; bf16 only);
- `checkpointing, first layers`: only the first `--checkpoint-layers` decoder layers recompute
  (`model.checkpoint_layers`), the others keep their activations (only with `--only`).

Prints one JSON object: per arm, the peak of each phase (MiB, the median over the updates after
the first) and the seconds of an update.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

ARMS = ("keep", "checkpointing", "checkpointing, deepspeed step", "checkpointing, first layers")


class PhasePeaks:
    """The largest RSS seen in each phase; `phase` is what the sampler files readings under."""

    def __init__(self, every: float = 0.002, reading=None):
        """`reading` returns MiB; this process's RSS unless given."""
        if reading is None:
            import psutil

            proc = psutil.Process()
            reading = lambda: proc.memory_info().rss >> 20  # noqa: E731
        self.reading, self.every, self.phase, self.peaks = reading, every, "init", {}
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            rss, phase = self.reading(), self.phase
            if rss > self.peaks.get(phase, 0):
                self.peaks[phase] = rss
            time.sleep(self.every)

    def wrap(self, obj, name: str, phase: str, after: str) -> None:
        inner = getattr(obj, name)

        def labelled(*args, **kwargs):
            self.phase = phase
            try:
                return inner(*args, **kwargs)
            finally:
                self.phase = after

        setattr(obj, name, labelled)


def measure_arm(args, arm: str) -> dict:
    """One arm in this process."""
    from common import one_rank_group
    from shared_prompt import make_batch

    one_rank_group()
    import rlmr.training.learner as learner_module
    from rlmr.config import AlgoConfig, LearnerConfig, load_config
    from rlmr.engine.loading import resolve_model_dir
    from rlmr.training import master_step

    if arm == "checkpointing, deepspeed step":
        master_step.install = lambda optimizer: False
    peaks = PhasePeaks()
    cfg = load_config(REPO / args.config)
    learner = learner_module.PolicyLearner(
        str(resolve_model_dir(cfg.model.source)),
        args.dtype,
        LearnerConfig(lr=1e-6, micro_batch_size=args.micro, backend="gloo"),
        AlgoConfig(behaviour_weight_cap=2.0 if args.dtype != "float32" else None),
        learner_module.RankInfo(0, 1, "cpu"),
        samples_per_step=args.prompts * args.n,
        seed=0,
        gradient_checkpointing=arm != "keep",
        checkpoint_layers=args.checkpoint_layers if arm == ARMS[3] else None,
    )
    vocab = learner.engine.module.config.vocab_size
    _, batch = make_batch(args.prompts, args.n, args.prompt_tokens, args.tokens, vocab)
    peaks.wrap(learner_module, "sequence_token_logprobs", "forward", "loss")
    peaks.wrap(learner.engine, "backward", "backward", "between")
    peaks.wrap(learner.engine, "step", "step", "between")
    rounds, seconds = [], []
    for _ in range(args.updates):
        peaks.peaks, peaks.phase = {}, "idle"
        time.sleep(0.05)
        start = time.perf_counter()
        learner.update(batch)
        seconds.append(time.perf_counter() - start)
        rounds.append(dict(peaks.peaks))
        print(f"{arm}: {seconds[-1]:.1f} s, {rounds[-1]}", file=sys.stderr, flush=True)
    later = rounds[1:] or rounds
    phases = sorted({k for r in later for k in r})
    peak = {p: statistics.median([r[p] for r in later if p in r]) for p in phases}
    return {
        "peak_rss_mib": peak,
        "update_peak_rss_mib": max(peak.values()),
        "update_s": [round(s, 2) for s in seconds],
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--config", default="configs/smollm2-cpu.yaml")
    p.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    p.add_argument("--prompts", type=int, default=2)
    p.add_argument("--n", type=int, default=8)
    p.add_argument("--prompt-tokens", type=int, default=40)
    p.add_argument("--tokens", type=int, default=96)
    p.add_argument("--micro", type=int, default=4)
    p.add_argument("--updates", type=int, default=3)
    p.add_argument("--checkpoint-layers", type=int, default=20, help="for the last arm")
    p.add_argument("--arm", choices=ARMS, help="measure one arm in this process (internal)")
    p.add_argument(
        "--only",
        action="append",
        choices=ARMS,
        help="measure this arm (repeatable; default: all, float32: the first two)",
    )
    args = p.parse_args(argv)
    if args.arm:
        print("ARM_JSON " + json.dumps(measure_arm(args, args.arm)))
        return 0
    from common import header

    from rlmr.config import load_config

    arms = ARMS[:3] if args.dtype != "float32" else ARMS[:2]
    if args.only:
        arms = tuple(args.only)
    result = header(
        load_config(REPO / args.config),
        args.prompts,
        args.n,
        dtype=args.dtype,
        prompt_tokens=args.prompt_tokens,
        max_response_tokens=args.tokens,
        micro_batch=args.micro,
        updates=args.updates,
    )
    result["arms"] = {}
    passed = argv if argv is not None else sys.argv[1:]
    for arm in arms:
        cmd = [sys.executable, __file__, "--arm", arm, *passed]
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
        line = next((x for x in out.stdout.splitlines() if x.startswith("ARM_JSON ")), None)
        if out.returncode != 0 or line is None:
            raise SystemExit(f"{arm}: exit {out.returncode}\n{out.stderr[-3000:]}")
        result["arms"][arm] = json.loads(line[len("ARM_JSON ") :])
        print(f"bench: {arm}: {result['arms'][arm]['peak_rss_mib']}", file=sys.stderr)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmark: GenRM judge throughput, `pivot` against `round_robin`, by group size.

    python bench/judge_throughput.py                       # n = 4, 8, 16; 2 groups; 3 repeats
    python bench/judge_throughput.py --sizes 4 8 --groups 4 --repeats 5

The judge of the main job (configs/smollm2-cpu.yaml: SmolLM2-135M-Instruct on
the HF engine, CPU, verdict read without an analysis, both orders) scores
`--groups` groups of `n` story responses (80-120 words each, made here from a
fixed seed) in one `GenerativeJudge.score_groups` call, so every comparison of
every group goes to the engine together, as the GenRM worker does in
training. `pivot` judges n-1 pairs per group, `round_robin` n(n-1)/2; each pair
is two engine prompts (`swap`). Figures: median seconds per call over
`--repeats` (after one warm-up call), comparisons (pairs) per second, engine
prompts per second, and seconds per group. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

WORDS = (
    "the lamp flickered over an empty harbour while gulls argued about bread and a small boat "
    "knocked against the pier as if asking to be let in from the cold night rain she wrote one "
    "more line in the logbook then listened for the horn that never came and the sea kept its "
    "own counsel under a sky the colour of old pewter"
).split()


def stories(n: int, rng: random.Random) -> tuple[str, ...]:
    return tuple(" ".join(rng.choice(WORDS) for _ in range(rng.randint(80, 120))) for _ in range(n))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[4, 8, 16])
    p.add_argument("--groups", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--config", default="configs/smollm2-cpu.yaml")
    args = p.parse_args(argv)

    from dataclasses import replace

    from rlmr.cli.eval import genrm_judge
    from rlmr.config import load_config
    from rlmr.judge import GenerativeJudge, JudgeGroup
    from rlmr.judge.strategies import plan_pairs

    cfg = load_config(REPO / args.config)
    writing = cfg.reward.writing
    base = genrm_judge(cfg)  # the config's judge on its own engine, both orders
    rng = random.Random(0)
    rows = []
    for n in args.sizes:
        groups = [
            JudgeGroup(
                prompt=f"Write a short story about a harbour at night ({g}).",
                responses=stories(n, rng),
            )
            for g in range(args.groups)
        ]
        for strategy in ("pivot", "round_robin"):
            settings = replace(base.settings, strategy=strategy)
            judge = GenerativeJudge(base.engine, settings)
            pairs = len(plan_pairs(strategy, n)) * args.groups
            prompts = pairs * (2 if settings.swap else 1)
            judge.score_groups(groups[:1])  # warm-up
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                judge.score_groups(groups)
                times.append(time.perf_counter() - t0)
            sec = statistics.median(times)
            rows.append(
                {
                    "n": n,
                    "strategy": strategy,
                    "groups": args.groups,
                    "comparisons": pairs,
                    "engine_prompts": prompts,
                    "call_s": round(sec, 3),
                    "comparisons_per_s": round(pairs / sec, 2),
                    "engine_prompts_per_s": round(prompts / sec, 2),
                    "s_per_group": round(sec / args.groups, 3),
                }
            )
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "judge": {
            "model": "SmolLM2-135M-Instruct",
            "engine": f"{writing.engine.type} ({getattr(writing.engine, 'device', '')})",
            "reasoning": writing.reasoning,
            "swap": writing.swap,
            "batch_size": getattr(writing.engine, "batch_size", None),
        },
        "rows": rows,
    }
    for n in args.sizes:
        by = {r["strategy"]: r for r in rows if r["n"] == n}
        result.setdefault("round_robin_over_pivot_s_per_group", {})[n] = round(
            by["round_robin"]["s_per_group"] / by["pivot"]["s_per_group"], 2
        )
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

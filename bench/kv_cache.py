"""Benchmark: the HF engine's decoding into one static KV cache against transformers' growing
cache.

    python bench/kv_cache.py                      # 4 prompts x 4 samples x 64 tokens, 5 rounds
    python bench/kv_cache.py --prompts 2 --n 8 --tokens 96

`HFEngine.generate` on the main job's model (configs/smollm2-cpu.yaml: SmolLM2-135M-Instruct,
fp32, CPU, its linear kernel), the first `--prompts` training prompts in the chat template, the
shared prefill in both arms. The engine's cache (`rlmr.engine.kv_cache.static_cache`: allocated
once per call, written in place) alternates in one process with the cache transformers grows by
concatenation at every decoding step, the same seed in both arms of a round. Figures: seconds per
call and per decoding step (a call's seconds over its longest response), each round's ratio, and
how many sampled sequences came out the same in both arms with the largest log-prob gap over
their tokens. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.sampler import engine_and_prompts  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--prompts", type=int, default=4)
    p.add_argument("--n", type=int, default=4)
    p.add_argument("--tokens", type=int, default=64)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--config", default="configs/smollm2-cpu.yaml")
    args = p.parse_args(argv)

    import torch

    import rlmr.engine.hf as hf
    from rlmr.engine import SamplingParams
    from rlmr.engine.loading import describe_source

    cfg, engine, prompts = engine_and_prompts(args.config, args.prompts)
    params = SamplingParams(n=args.n, max_new_tokens=args.tokens, temperature=1.0, seed=0)
    own = hf.static_cache
    arms = {"static": own, "growing": lambda model, length, prefill: prefill}
    engine.generate(prompts, SamplingParams(n=args.n, max_new_tokens=4, seed=0))  # warm-up
    runs: dict[str, list[dict]] = {k: [] for k in arms}
    same, gap = 0, 0.0
    for r in range(args.rounds):
        outs = {}
        for name, fn in arms.items():
            hf.static_cache = fn
            try:
                start = time.perf_counter()
                outs[name] = [
                    g for group in engine.generate(prompts, replace(params, seed=r)) for g in group
                ]
                seconds = time.perf_counter() - start
            finally:
                hf.static_cache = own
            steps = max(len(g.token_ids) for g in outs[name])
            runs[name].append({"s": round(seconds, 3), "steps": steps})
            print(f"round {r} {name}: {seconds:.2f} s, {steps} steps", file=sys.stderr)
        for a, b in zip(outs["static"], outs["growing"], strict=True):
            if a.token_ids == b.token_ids:
                same += 1
                gap = max([gap, *(abs(x - y) for x, y in zip(a.logprobs, b.logprobs))])
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads",
        "work": {
            "model": describe_source(cfg.model.source),
            "prompts": args.prompts,
            "samples_per_prompt": args.n,
            "max_new_tokens": args.tokens,
            "linear_kernel": engine.linear_kernel,
        },
        "rounds": args.rounds,
    }
    for name, rs in runs.items():
        result[name] = {
            "s_per_call": round(statistics.median(x["s"] for x in rs), 3),
            "ms_per_step": round(1000 * statistics.median(x["s"] / x["steps"] for x in rs), 1),
            "calls": rs,
        }
    result["ratio_per_round"] = [
        round((a["s"] / a["steps"]) / (b["s"] / b["steps"]), 3)
        for a, b in zip(runs["static"], runs["growing"], strict=True)
    ]
    result["same_sequences"] = f"{same} of {args.rounds * len(prompts) * args.n}"
    result["max_logprob_gap_same_sequences"] = gap
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

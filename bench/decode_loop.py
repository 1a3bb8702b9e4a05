"""Benchmark: the HF engine's own decoding loop against transformers' `generate`.

    python bench/decode_loop.py         # bf16, the main job's shape: 2 x 8 x 96, 3 rounds
    python bench/decode_loop.py --dtype float32 --prompts 4 --n 4 --tokens 64

One engine on the main job's model (configs/smollm2-cpu.yaml: SmolLM2-135M-Instruct, CPU, its
rollout engine's options), the first `--prompts` training prompts as the rollout formats them, `--n`
samples each at temperature 1. The same model decodes through `rlmr.engine.decode`
(`decode_loop: auto`) and through `generate` (`decode_loop: generate`), alternating in one process
with the same seed in each round. Figures: median seconds per call and per decoding step (a
call's seconds over its longest response), and each one's mean distance (nats a token) from the
log-probs of one forward over the whole sampled sequence, the computation the learner makes (in
bf16 the two loops round differently, so their samples part after a few tokens). Prints one JSON
object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import call_figures, header  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--prompts", type=int, default=2)
    p.add_argument("--n", type=int, default=8)
    p.add_argument("--tokens", type=int, default=96)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    p.add_argument("--config", default="configs/smollm2-cpu.yaml")
    args = p.parse_args(argv)

    from rlmr.config import load_config
    from rlmr.data.prompts import load_prompts
    from rlmr.engine import SamplingParams
    from rlmr.engine.factory import hf_engine_options
    from rlmr.engine.hf import HFEngine
    from rlmr.training.rollout import format_prompt

    cfg = load_config(REPO / args.config)
    own = HFEngine.from_source(
        cfg.model.source,
        dtype=args.dtype,
        device="cpu",
        max_model_len=cfg.model.max_model_len,
        **{**hf_engine_options(cfg.rollout.engine), "decode_loop": "auto"},
    )
    if own.decode_loop != "own":
        raise SystemExit(f"{args.config}: the engine's own loop does not run this model")
    engines = {
        "own_loop": own,
        "generate": HFEngine(
            own.model,
            own.tokenizer,
            batch_size=own.batch_size,
            max_model_len=own.max_model_len,
            decode_loop="generate",
        ),
    }
    rows = load_prompts(REPO / cfg.data.train)[: args.prompts]
    prompts = [format_prompt(r, own.tokenizer, cfg.model.chat_template) for r in rows]
    params = SamplingParams(n=args.n, max_new_tokens=args.tokens, temperature=1.0, seed=0)
    for engine in engines.values():  # warm-up: packed weights, first-call allocations
        engine.generate(prompts, replace(params, max_new_tokens=4))
    runs: dict[str, list[dict]] = {k: [] for k in engines}
    gaps: dict[str, list[float]] = {k: [] for k in engines}
    for r in range(args.rounds):
        for name, engine in engines.items():
            start = time.perf_counter()
            out = engine.generate(prompts, replace(params, seed=r))
            seconds = time.perf_counter() - start
            gens = [g for group in out for g in group]
            steps = max(len(g.token_ids) for g in gens)
            runs[name].append({"s": round(seconds, 3), "steps": steps})
            print(f"round {r} {name}: {seconds:.2f} s, {steps} steps", file=sys.stderr)
            forced = own.sequence_logprobs(
                [g.prompt_token_ids for g in gens], [g.token_ids for g in gens]
            )
            for g, f in zip(gens, forced):
                gaps[name] += [abs(x - y) for x, y in zip(g.logprobs, f)]
    result = {
        **header(
            cfg,
            args.prompts,
            args.n,
            max_new_tokens=args.tokens,
            dtype=args.dtype,
            linear_kernel=own.linear_kernel,
        ),
        "rounds": args.rounds,
    }
    for name, rs in runs.items():
        result[name] = call_figures(rs)
    result["ratio_per_call"] = round(
        result["own_loop"]["s_per_call"] / result["generate"]["s_per_call"], 3
    )
    for name, g in gaps.items():  # what the learner's correction sees: sampling against a
        # forward over the whole sequence
        result[name]["mean_abs_logprob_gap_to_full_forward"] = round(statistics.mean(g), 5)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

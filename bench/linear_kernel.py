"""Benchmark: the HF engine's Linear kernels on CPU, fp32 (oneDNN packed) against fp16 weights.

    python bench/linear_kernel.py                   # 4 prompts x 4 samples x 64 tokens, 3 rounds
    python bench/linear_kernel.py --prompts 2 --n 8 --tokens 96

`HFEngine.generate` on the main job's model (configs/smollm2-cpu.yaml: SmolLM2-135M-Instruct,
fp32, CPU), the first `--prompts` training prompts in the chat template, with the model's Linear
layers on each kernel in turn (`rlmr.engine.cpu_linear.pack_linears`), alternating in one
process: `onednn` (fp32 weights packed for oneDNN) and `fp16` (FBGEMM: fp16 weights widened to
fp32 in registers, fp32 arithmetic), plus `default` (`F.linear`, MKL) with `--with-default`.

Figures: median seconds per call and per decoding step (a call's seconds over its longest
response), and what fp16's rounding costs: the log-prob each fp16-sampled token has under the
engine against what the fp32 model gives the same tokens (`sequence_logprobs` on oneDNN): mean,
99th percentile and largest gap in nats, and the share of tokens whose importance ratio
exp(fp32 - fp16) leaves [0.8, 1.28] (the loss's default clip range). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import header  # noqa: E402
from bench.sampler import engine_and_prompts  # noqa: E402


def use_kernel(model, kernel: str, batch_hint: int) -> None:
    """Put every fp32 Linear of `model` on `kernel`, dropping the other kernels' packed copies."""
    from rlmr.engine.cpu_linear import pack_linears, release_packed

    release_packed(model)
    if kernel == "default":
        for module in model.modules():
            module.__dict__.pop("forward", None)  # back to the class's forward (F.linear)
    else:
        pack_linears(model, batch_hint, kernel)


def rounding_gap(engine, generations, batch_hint: int) -> dict:
    """fp16-sampled tokens: their engine log-probs against the fp32 model's (oneDNN)."""
    use_kernel(engine.model, "onednn", batch_hint)
    exact = engine.sequence_logprobs(
        [g.prompt_token_ids for g in generations], [g.token_ids for g in generations]
    )
    gaps = sorted(
        b - a for g, row in zip(generations, exact) for a, b in zip(g.logprobs, row)
    )  # fp32 minus fp16: the log of the importance ratio
    absolute = sorted(abs(x) for x in gaps)
    return {
        "tokens": len(gaps),
        "mean_abs_nats": round(statistics.mean(absolute), 5),
        "p99_abs_nats": round(absolute[int(0.99 * (len(absolute) - 1))], 5),
        "max_abs_nats": round(absolute[-1], 5),
        "share_outside_clip": round(
            sum(not math.log(0.8) <= x <= math.log(1.28) for x in gaps) / len(gaps), 5
        ),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--prompts", type=int, default=4)
    p.add_argument("--n", type=int, default=4)
    p.add_argument("--tokens", type=int, default=64)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--with-default", action="store_true", help="also time F.linear (MKL)")
    p.add_argument("--config", default="configs/smollm2-cpu.yaml")
    args = p.parse_args(argv)

    from rlmr.engine import SamplingParams
    from rlmr.engine.cpu_linear import fp16_available, onednn_available

    if not (fp16_available() and onednn_available()):
        print("this PyTorch lacks oneDNN or FBGEMM fp16: nothing to compare", file=sys.stderr)
        return 2
    cfg, engine, prompts = engine_and_prompts(args.config, args.prompts)
    kernels = ["onednn", "fp16"] + (["default"] if args.with_default else [])
    hint = engine.batch_size
    runs: dict[str, list[dict]] = {k: [] for k in kernels}
    sampled = []
    for kernel in kernels:  # warm-up: each kernel packs its weights once
        use_kernel(engine.model, kernel, hint)
        engine.generate(prompts, SamplingParams(n=args.n, max_new_tokens=4, seed=0))
    for r in range(args.rounds):
        params = SamplingParams(n=args.n, max_new_tokens=args.tokens, temperature=1.0, seed=r)
        for kernel in kernels if r % 2 == 0 else kernels[::-1]:
            use_kernel(engine.model, kernel, hint)
            engine.generate(prompts, SamplingParams(n=args.n, max_new_tokens=1, seed=0))  # packs
            start = time.perf_counter()
            out = engine.generate(prompts, params)
            seconds = time.perf_counter() - start
            steps = max(len(g.token_ids) for group in out for g in group)
            runs[kernel].append({"s": round(seconds, 3), "steps": steps})
            if kernel == "fp16":
                sampled += [g for group in out for g in group]
            print(f"round {r} {kernel}: {seconds:.2f} s, {steps} steps", file=sys.stderr)
    result = {
        **header(cfg, args.prompts, args.n, max_new_tokens=args.tokens, batch_size=hint),
        "rounds": args.rounds,
    }
    for kernel, rs in runs.items():
        result[kernel] = {
            "s_per_call": round(statistics.median(x["s"] for x in rs), 3),
            "ms_per_step": round(1000 * statistics.median(x["s"] / x["steps"] for x in rs), 1),
            "calls": rs,
        }
    result["fp16_over_onednn_per_step"] = round(
        result["fp16"]["ms_per_step"] / result["onednn"]["ms_per_step"], 3
    )
    result["fp16_rounding_gap"] = rounding_gap(engine, sampled, hint)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmark: the HF engine's sampler, inverse transform sampling against `torch.multinomial`.

    python bench/sampler.py                      # 4 prompts x 4 samples x 64 tokens, 3 rounds
    python bench/sampler.py --prompts 2 --n 8 --tokens 96

`HFEngine.generate` on the main job's model (configs/smollm2-cpu.yaml: SmolLM2-135M-Instruct,
fp32, CPU, its linear kernel), the first `--prompts` training prompts in the chat template. The
engine's own sampler (`rlmr.engine.sampling.InverseCDFSampler`: one uniform number per row)
alternates in one process with transformers' sampling step (`torch.multinomial` over the softmax: an
exponential number per vocabulary entry), the same warpers before both. Figures: median seconds
per decoding step (a call's seconds over its longest response: a batch decodes until its last
row ends) and per call. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import call_figures, header  # noqa: E402


class MultinomialSampler:
    """transformers' sampling step (`torch.multinomial` over the softmax), in the engine's
    processor form: -inf everywhere but the drawn token, told to the engine's log-prob recorder."""

    def __init__(self, recorder=None):
        self.recorder = recorder

    def __call__(self, input_ids, scores):
        import torch

        drawn = torch.multinomial(torch.softmax(scores.float(), dim=-1), num_samples=1)
        if self.recorder is not None:
            self.recorder.picked(drawn)
        return torch.full_like(scores, -float("inf")).scatter_(-1, drawn, 0.0)


def engine_and_prompts(config: str, count: int):
    """The main job's config, its rollout engine (HF, CPU, the config's engine options) and its
    first `count` training prompts as the rollout formats them (`format_prompt`)."""
    import rlmr.engine.hf as hf
    from rlmr.config import load_config
    from rlmr.data.prompts import load_prompts
    from rlmr.engine.factory import hf_engine_options
    from rlmr.training.rollout import format_prompt

    cfg = load_config(REPO / config)
    engine = hf.HFEngine.from_source(
        cfg.model.source,
        dtype=cfg.model.dtype,
        device="cpu",
        max_model_len=cfg.model.max_model_len,
        **hf_engine_options(cfg.rollout.engine),
    )
    rows = load_prompts(REPO / cfg.data.train)[:count]
    prompts = [format_prompt(r, engine.tokenizer, cfg.model.chat_template) for r in rows]
    return cfg, engine, prompts


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--prompts", type=int, default=4)
    p.add_argument("--n", type=int, default=4)
    p.add_argument("--tokens", type=int, default=64)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--config", default="configs/smollm2-cpu.yaml")
    args = p.parse_args(argv)

    from dataclasses import replace

    import rlmr.engine.sampling as sampling
    from rlmr.engine import SamplingParams

    cfg, engine, prompts = engine_and_prompts(args.config, args.prompts)
    params = SamplingParams(n=args.n, max_new_tokens=args.tokens, temperature=1.0, seed=0)
    samplers = {"inverse_cdf": sampling.InverseCDFSampler, "multinomial": MultinomialSampler}
    own = sampling.InverseCDFSampler
    engine.generate(prompts, SamplingParams(n=args.n, max_new_tokens=4, seed=0))  # warm-up
    runs: dict[str, list[dict]] = {k: [] for k in samplers}
    for r in range(args.rounds):
        for name, cls in samplers.items():
            sampling.InverseCDFSampler = cls
            try:
                start = time.perf_counter()
                out = engine.generate(prompts, replace(params, seed=r))
                seconds = time.perf_counter() - start
            finally:
                sampling.InverseCDFSampler = own
            steps = max(len(g.token_ids) for group in out for g in group)
            runs[name].append({"s": seconds, "steps": steps})
            print(f"round {r} {name}: {seconds:.2f} s, {steps} steps", file=sys.stderr)
    result = {
        **header(
            cfg,
            args.prompts,
            args.n,
            max_new_tokens=args.tokens,
            linear_kernel=engine.linear_kernel,
        ),
        "rounds": args.rounds,
    }
    for name, rs in runs.items():
        result[name] = call_figures(rs)
    result["ratio_per_step"] = round(
        result["inverse_cdf"]["ms_per_step"] / result["multinomial"]["ms_per_step"], 3
    )
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

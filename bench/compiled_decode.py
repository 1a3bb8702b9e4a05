"""Benchmark: a compiled decoding step (`torch.compile` of the model's forward on a static KV
cache) against what the HF engine runs (eager `generate`, dynamic cache, Linear layers on the
kernel `engine.linear_kernel: auto` picks).

    python bench/compiled_decode.py                          # bf16, 16 rows x 64 new tokens
    python bench/compiled_decode.py --dtype float32 --rounds 5

The main job's model (configs/smollm2-cpu.yaml: SmolLM2-135M-Instruct) on CPU, one prompt
repeated `--rows` times, greedy, exactly `--tokens` new tokens. Two copies of the model in one
process: the engine's (its Linear layers packed where `auto` picks oneDNN) and a plain one whose
forward is compiled once (inductor, static shapes) and run with a `StaticCache`. Round 0 of the
compiled arm pays the compilation and is reported apart; the rounds alternate the two arms.
Prints one JSON object: seconds per round, medians over rounds 1.., their ratio, the compile time,
and whether both arms decoded the same tokens.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import header  # noqa: E402


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(REPO / "configs" / "smollm2-cpu.yaml"))
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    ap.add_argument("--rows", type=int, default=16)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=4, help="alternated rounds (>= 2)")
    args = ap.parse_args(argv)
    if args.rounds < 2:
        ap.error("--rounds: at least 2 (round 0 of the compiled arm is its compilation)")

    import torch
    from transformers import GenerationConfig, StaticCache

    from rlmr.config import load_config
    from rlmr.engine.cpu_linear import choose_linear_kernel, pack_linears
    from rlmr.engine.loading import load_model_and_tokenizer

    cfg = load_config(args.config, [])
    cpu = torch.device("cpu")
    engine_model, tok = load_model_and_tokenizer(cfg.model.source, dtype=args.dtype, device=cpu)
    plain, _ = load_model_and_tokenizer(cfg.model.source, dtype=args.dtype, device=cpu)
    kernel = choose_linear_kernel(engine_model, "auto", args.rows)
    if kernel == "onednn":
        pack_linears(engine_model, args.rows)
    compiled = torch.compile(plain.forward, dynamic=False)
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": "Write a short poem about the sea at night."}],
        tokenize=False,
        add_generation_prompt=True,
    )
    inputs = tok([prompt] * args.rows, return_tensors="pt")
    gen = GenerationConfig(
        max_new_tokens=args.tokens,
        min_new_tokens=args.tokens,
        do_sample=False,
        pad_token_id=tok.eos_token_id,
        use_cache=True,
    )

    def eager():
        return engine_model.generate(**inputs, generation_config=gen)

    def static_compiled():
        cache = StaticCache(
            config=plain.config, max_cache_len=inputs.input_ids.shape[1] + args.tokens + 1
        )
        plain.forward = compiled
        try:
            return plain.generate(**inputs, generation_config=gen, past_key_values=cache)
        finally:
            del plain.forward  # back to the class's forward between rounds

    seconds: dict[str, list[float]] = {"engine_eager": [], "compiled_static": []}
    outputs = {}
    with torch.no_grad():
        for r in range(args.rounds):
            for name, fn in (("engine_eager", eager), ("compiled_static", static_compiled)):
                start = time.perf_counter()
                outputs[name] = fn()
                seconds[name].append(time.perf_counter() - start)
                print(f"round {r} {name}: {seconds[name][-1]:.2f} s", file=sys.stderr, flush=True)
    med = {k: statistics.median(v[1:]) for k, v in seconds.items()}
    result = {
        **header(cfg, prompts=1, samples=args.rows, tokens=args.tokens),
        "dtype": args.dtype,
        "linear_kernel": kernel,
        "seconds": seconds,
        "median_s": med,
        "compiled_over_eager": med["compiled_static"] / med["engine_eager"],
        "compile_round_s": seconds["compiled_static"][0],
        "same_tokens": bool(torch.equal(outputs["engine_eager"], outputs["compiled_static"])),
    }
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()

"""Benchmark: how far a GRPO step is from this machine's floor for the same arithmetic.

    python bench/floor.py                                  # 4 prompts x 4 samples x 64 tokens
    python bench/floor.py --prompts 2 --n 8 --tokens 96    # the main job's shape
    python bench/floor.py --step bench/results/perf/vs_trl-4x4x64-sampler.json

On the main job's model's shapes (its config.json; random weights of the same
sizes), in one process: the matrix-product rate of the learner's products
(rows = a micro-batch's response tokens, as the learner runs them) in fp32;
one decoding step, every Linear layer of the model in order on `prompts x n`
rows, each with its own weight (so, as in decoding, the weights come from
memory, not cache), through `F.linear` and oneDNN's packed kernel; the read
bandwidth (a sum over 512 MiB); the output layer's decoding product with fp16
and bf16 weights. From them, the seconds a step's arithmetic would take at
the best rate measured: the learner's forward and backward (3 x the forward's
products), the reference's forward, decoding (per token the larger of its
products at that rate and its weights at the read bandwidth). `--step` puts a
`vs_trl.py` result's measured phases beside it. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import header  # noqa: E402
from rlmr.engine.cpu_linear import median_seconds  # noqa: E402


def layer_shapes(config) -> list[tuple[int, int]]:
    """(in, out) of one decoder layer's Linear layers, in order (Llama/Qwen-style blocks)."""
    hidden, inter = config.hidden_size, config.intermediate_size
    head_dim = getattr(config, "head_dim", None) or hidden // config.num_attention_heads
    q = config.num_attention_heads * head_dim
    kv = getattr(config, "num_key_value_heads", config.num_attention_heads) * head_dim
    return (
        [(hidden, q), (hidden, kv), (hidden, kv), (q, hidden)]
        + [(hidden, inter)] * 2
        + [(inter, hidden)]
    )


def forward_gflop(config, body_tokens: int, logit_tokens: int) -> float:
    """Matrix-product GFLOP of a forward over `body_tokens` positions with the output layer on
    `logit_tokens` of them (attention scores left out: under 2% at these lengths)."""
    body = config.num_hidden_layers * sum(i * o for i, o in layer_shapes(config))
    return 2 * (body * body_tokens + config.hidden_size * config.vocab_size * logit_tokens) / 1e9


def decode_step_seconds(config, rows: int) -> tuple[dict, int, float]:
    """Seconds of one decoding step's products (every Linear layer in order on `rows` rows, each
    with its own weight) through `F.linear` and, where this PyTorch has it, oneDNN's packed
    kernel; and the step's weight bytes and GFLOP."""
    import torch

    from rlmr.engine.cpu_linear import onednn_available

    weights = [
        torch.randn(o, i) for _ in range(config.num_hidden_layers) for i, o in layer_shapes(config)
    ] + [torch.randn(config.vocab_size, config.hidden_size)]
    inputs = {w.shape[1]: torch.randn(rows, w.shape[1]) for w in weights}
    plain = [(w, inputs[w.shape[1]]) for w in weights]
    out = {
        "f_linear": median_seconds(lambda: [torch.nn.functional.linear(x, w) for w, x in plain], 5)
    }
    if onednn_available():
        packed = [(torch.ops.mkldnn._reorder_linear_weight(w, rows), x) for w, x in plain]

        def onednn():
            for w, x in packed:
                torch.ops.mkldnn._linear_pointwise(x, w, None, "none", [None], "")

        out["onednn_packed"] = median_seconds(onednn, 5)
    count = sum(w.numel() for w in weights)
    return out, 4 * count, 2 * rows * count / 1e9


def read_bandwidth_gbs() -> float:
    """GB/s of a sum over 512 MiB of float32 (a read from memory)."""
    import torch

    big = torch.randn(128 * 1024 * 1024)
    return big.numel() * 4 / median_seconds(lambda: big.sum(), 5) / 1e9


def output_layer_precisions(config, rows: int) -> dict:
    """The output layer's decoding product (`rows` x hidden by hidden x vocab) in fp32, fp16 and
    bf16 (`F.linear`, ms), and whether oneDNN packs the fp16/bf16 weight on this CPU."""
    import torch

    x = torch.randn(rows, config.hidden_size)
    head = torch.randn(config.vocab_size, config.hidden_size)
    out = {}
    for name, dtype in (("fp32", torch.float32), ("fp16", torch.float16), ("bf16", torch.bfloat16)):
        xw, ww = x.to(dtype), head.to(dtype)
        product = functools.partial(torch.nn.functional.linear, xw, ww)
        entry = {"ms": round(1e3 * median_seconds(product, 3), 1)}
        if dtype != torch.float32:
            try:
                torch.ops.mkldnn._reorder_linear_weight(ww, rows)
                entry["onednn_packs_it"] = True
            except RuntimeError as e:
                entry["onednn_packs_it"] = False
                entry["why"] = str(e).splitlines()[0][:160]
        out[name] = entry
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--prompts", type=int, default=4)
    p.add_argument("--n", type=int, default=4)
    p.add_argument("--tokens", type=int, default=64)
    p.add_argument("--prompt-tokens", type=int, default=50, help="chat-templated prompt length")
    p.add_argument("--micro", type=int, default=4, help="samples per learner micro-batch")
    p.add_argument("--config", default="configs/smollm2-cpu.yaml")
    p.add_argument("--step", help="a vs_trl.py result: its rlmr phases go beside the floor")
    args = p.parse_args(argv)

    import torch
    from transformers import AutoConfig

    from rlmr.config import load_config
    from rlmr.engine.loading import resolve_model_dir

    cfg = load_config(REPO / args.config)
    model = AutoConfig.from_pretrained(resolve_model_dir(cfg.model.source))
    hidden, vocab = model.hidden_size, model.vocab_size
    rows = args.prompts * args.n
    torch.manual_seed(0)

    # The learner's products: a micro-batch's response rows (+ the last prompt token).
    m = args.micro * (args.tokens + 1)
    gemm = {}
    for k, n in sorted(set(layer_shapes(model))) + [(hidden, vocab)]:
        a, w = torch.randn(m, k), torch.randn(n, k)
        s = median_seconds(
            lambda a=a, w=w: torch.nn.functional.linear(a, w), 5 if n == vocab else 20
        )
        gemm[f"{m}x{k}x{n}"] = round(2 * m * k * n / s / 1e9, 1)
    peak = max(gemm.values())

    decode, step_bytes, step_gflop = decode_step_seconds(model, rows)
    read_gbs = read_bandwidth_gbs()
    low_precision = output_layer_precisions(model, rows)

    samples = args.prompts * args.n
    micros = samples // args.micro
    # Per micro-batch (one group's rows share their prompt, run once): the response rows with
    # the last prompt token, the output layer on them; the prompt's other tokens once.
    per_micro = forward_gflop(model, args.micro * (args.tokens + 1), args.micro * args.tokens)
    per_micro += forward_gflop(model, args.prompt_tokens - 1, 0)
    learner_gflop = 3 * micros * per_micro
    reference_gflop = micros * per_micro
    best_decode = min(decode.values())
    floor = {
        "learner_s": round(learner_gflop / peak, 2),
        "reference_s": round(reference_gflop / peak, 2),
        "decode_s": round(args.tokens * max(step_gflop / peak, step_bytes / read_gbs / 1e9), 2),
    }
    floor["step_s"] = round(sum(floor.values()), 2)
    result = {
        **header(
            cfg,
            args.prompts,
            args.n,
            max_new_tokens=args.tokens,
            prompt_tokens=args.prompt_tokens,
            micro_batch=args.micro,
        ),
        "learner_products_gflops": gemm,
        "best_rate_gflops": peak,
        "read_gbs": round(read_gbs, 1),
        "decode_step": {
            "rows": rows,
            "weights_mb": round(step_bytes / 1e6),
            "gflop": round(step_gflop, 2),
            **{f"{k}_ms": round(1e3 * v, 1) for k, v in decode.items()},
            "weights_gbs": round(step_bytes / best_decode / 1e9, 1),
            "gflops": round(step_gflop / best_decode, 1),
        },
        "output_layer_decode_product": low_precision,
        "gflop": {
            "learner": round(learner_gflop, 1),
            "reference": round(reference_gflop, 1),
            "decode": round(args.tokens * step_gflop, 1),
        },
        "floor_at_best_rate": floor,
    }
    if args.step:
        measured = json.loads(Path(args.step).read_text())["rlmr"]["phases_s"]
        result["measured"] = {
            "file": args.step,
            "learner_s": measured["update"],
            "reference_s": measured["reference"],
            "rollout_s": measured["rollout"],
            "step_s": measured["step"],
            "step_over_floor": round(measured["step"] / floor["step_s"], 2),
        }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

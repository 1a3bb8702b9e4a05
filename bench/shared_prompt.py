"""Benchmark: the learner's update and the reference's log-probs, a shared prompt run in one
flattened forward with its rows (`rlmr/training/shared_prompt.py`) against the KV-cache path.

    python bench/shared_prompt.py                       # 4 prompts x 4 samples x <= 64 tokens
    python bench/shared_prompt.py --prompts 2 --n 8 --tokens 96 --rounds 5

The main job's model (configs/smollm2-cpu.yaml: SmolLM2-135M-Instruct, fp32, CPU) in a real
`PolicyLearner` (DeepSpeed, gloo, one rank, micro-batches of `--micro` rows, fused AdamW, lr 1e-6).
One batch, made once: `--prompts` prompts of `--prompt-tokens` random token ids, `--n` responses
each of random ids, their lengths drawn between half of `--tokens` and `--tokens` (rows padded at
the end, as in training). Each round runs `PolicyLearner.update` and `response_logprobs` (what
the reference actor computes) once with the flattened forward and once with the KV-cache path
(the path every model outside `PACKABLE_MODEL_TYPES` takes), alternating in one process. Prints
one JSON object: seconds per round, medians, and each round's ratio flattened / KV cache.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import header, one_rank_group  # noqa: E402


def make_batch(prompts: int, n: int, prompt_tokens: int, tokens: int, vocab: int):
    import torch

    from rlmr.core.records import Group, PromptRow, Response, TokenBatch, TrainBatch

    g = torch.Generator().manual_seed(0)
    groups = []
    for p in range(prompts):
        prompt = tuple(torch.randint(100, vocab, (prompt_tokens,), generator=g).tolist())
        responses = []
        for s in range(n):
            length = int(torch.randint(tokens // 2, tokens + 1, (1,), generator=g))
            ids = tuple(torch.randint(100, vocab, (length,), generator=g).tolist())
            responses.append(Response(f"r{s}", ids, (-1.0,) * length, "stop"))
        groups.append(Group(PromptRow(f"p{p}", "x"), "x", prompt, tuple(responses)))
    tb = TokenBatch.from_groups(groups, pad_token_id=0)
    return tb, TrainBatch.of(tb, torch.randn(prompts, n, generator=g))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--prompts", type=int, default=4)
    p.add_argument("--n", type=int, default=4)
    p.add_argument("--tokens", type=int, default=64, help="longest response")
    p.add_argument("--prompt-tokens", type=int, default=40)
    p.add_argument("--micro", type=int, default=4, help="rows per learner micro-batch")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--config", default="configs/smollm2-cpu.yaml")
    args = p.parse_args(argv)
    one_rank_group()  # the learner: one DeepSpeed rank in this process

    # DeepSpeed logs to standard output: send it to standard error while it runs, so standard
    # output holds the JSON alone.
    stdout = os.dup(1)
    os.dup2(2, 1)
    try:
        result = measure(args)
    finally:
        sys.stdout.flush()
        os.dup2(stdout, 1)
    print(json.dumps(result, indent=1))
    return 0


def measure(args) -> dict:
    import torch

    import rlmr.training.shared_prompt as shared_prompt
    from rlmr.config import AlgoConfig, LearnerConfig, load_config
    from rlmr.engine.loading import resolve_model_dir
    from rlmr.training.learner import PolicyLearner, RankInfo
    from rlmr.training.logprobs import response_logprobs

    cfg = load_config(REPO / args.config)
    learner = PolicyLearner(
        str(resolve_model_dir(cfg.model.source)),
        "float32",
        LearnerConfig(lr=1e-6, micro_batch_size=args.micro, grad_clip=1.0, backend="gloo"),
        AlgoConfig(),
        RankInfo(0, 1, "cpu"),
        samples_per_step=args.prompts * args.n,
        seed=0,
    )
    vocab = learner.engine.module.config.vocab_size
    tokens, batch = make_batch(args.prompts, args.n, args.prompt_tokens, args.tokens, vocab)
    packable = shared_prompt.PACKABLE_MODEL_TYPES
    arms = {"flattened": packable, "kv_cache": frozenset()}
    seconds = {arm: {"update": [], "reference": []} for arm in arms}
    for r in range(args.rounds):
        for arm, types in arms.items():
            shared_prompt.PACKABLE_MODEL_TYPES = types
            start = time.perf_counter()
            learner.update(batch)
            seconds[arm]["update"].append(round(time.perf_counter() - start, 3))
            start = time.perf_counter()
            response_logprobs(learner.engine.module, tokens, args.micro, torch.device("cpu"))
            seconds[arm]["reference"].append(round(time.perf_counter() - start, 3))
            print(f"round {r} {arm}: {seconds[arm]}", file=sys.stderr, flush=True)
    shared_prompt.PACKABLE_MODEL_TYPES = packable
    return {
        **header(
            cfg,
            args.prompts,
            args.n,
            max_response_tokens=args.tokens,
            prompt_tokens=args.prompt_tokens,
            micro_batch=args.micro,
            padded_width=tokens.input_ids.shape[1],
        ),
        "seconds": seconds,
        "median_s": {
            arm: {k: round(statistics.median(v), 3) for k, v in d.items()}
            for arm, d in seconds.items()
        },
        "ratio_per_round": {
            k: [
                round(a / b, 3)
                for a, b in zip(seconds["flattened"][k], seconds["kv_cache"][k], strict=True)
            ]
            for k in ("update", "reference")
        },
    }


if __name__ == "__main__":
    raise SystemExit(main())

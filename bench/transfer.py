"""Benchmark: what a step's records cost to send to another process (pickled bytes, seconds).

    python bench/transfer.py                 # 512 prompts x 16 samples, 8 shards
    python bench/transfer.py --prompts 64 --shards 4

Groups are `bench/pipeline.py`'s synthetic ones (64-token prompts, responses of 193-256
tokens with their log-probs, the groups `bench/ray_overhead.py` sends through Ray). Two
comparisons, each in this process with `ray.cloudpickle` (what Ray uses):

- the groups as the rollout returns them against `Group.for_scoring()` (what the verifier
  and the judge are sent): bytes, pickle and unpickle seconds (best of `--rounds`);
- one learner shard of the step's `TrainBatch` (`batch.split(shards)[0]`) as a slice against
  `.compact()`: a pickled slice carries its parent's whole storage.

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import ray.cloudpickle as cloudpickle  # noqa: E402
import torch  # noqa: E402
from pipeline import ModelledServices  # noqa: E402

from rlmr.core.records import PromptRow, TokenBatch, TrainBatch  # noqa: E402
from rlmr.engine.base import SamplingParams  # noqa: E402

INSTANT = {k: (0.0, 0.0) for k in ("rollout", "reward", "reference", "update", "sync")}


def timed(fn, rounds: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(rounds):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def measure(obj, rounds: int) -> dict:
    dump_s, data = timed(lambda: cloudpickle.dumps(obj), rounds)
    load_s, _ = timed(lambda: pickle.loads(data), rounds)
    return {
        "mb": round(len(data) / 1e6, 2),
        "pickle_s": round(dump_s, 3),
        "unpickle_s": round(load_s, 3),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--prompts", type=int, default=512)
    p.add_argument("--n", type=int, default=16)
    p.add_argument("--shards", type=int, default=8)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)

    rows = [PromptRow(id=f"p{i}", prompt=f"Write piece {i}.") for i in range(args.prompts)]
    groups = ModelledServices(INSTANT).sample(rows, SamplingParams(max_new_tokens=256, n=args.n))
    build_s, light = timed(lambda: [g.for_scoring() for g in groups], args.rounds)
    tokens = TokenBatch.from_groups(groups, pad_token_id=0)
    batch = TrainBatch.of(tokens, torch.zeros(len(tokens)))
    shard = batch.split(args.shards)[0]
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "prompts": args.prompts,
        "n": args.n,
        "groups_as_sampled": measure(groups, args.rounds),
        "groups_for_scoring": {**measure(light, args.rounds), "build_s": round(build_s, 3)},
        "train_batch": measure(batch, args.rounds),
        f"one_of_{args.shards}_shards_as_slice": measure(shard, args.rounds),
        f"one_of_{args.shards}_shards_compact": measure(shard.compact(), args.rounds),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: the learner's log-probs through the output layer in chunks of positions
(`rlmr/training/output_layer.py`) against the whole logits, memory and seconds.

    python bench/output_layer.py                       # 4 rows x <= 1024 tokens, bf16
    python bench/output_layer.py --tokens 96 --dtype float32

The main job's model (SmolLM2-135M-Instruct) in train mode. One batch of `--rows` responses of
random token ids to one prompt of `--prompt-tokens`, their lengths between half of `--tokens` and
`--tokens`. Each run is a fresh process (so one arm's heap does not serve the other's) that does
`--repeats` forward and backward passes of `sequence_token_logprobs` (log-probs and entropy, as the
learner's micro-step) and reports, per pass, the resident memory's peak above what it was before
the pass (sampled every 10 ms) and the seconds. The two arms alternate, `--rounds` runs each.
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import header  # noqa: E402

ARMS = ("chunked", "logits")


def one_run(args) -> dict:
    """In this process: `--repeats` passes of one arm."""
    import ctypes
    import threading
    import time

    import torch
    from transformers import AutoModelForCausalLM

    import rlmr.training.logprobs as logprobs
    from bench.shared_prompt import make_batch
    from rlmr.config import load_config
    from rlmr.engine.loading import resolve_model_dir
    from rlmr.training.logprobs import first_response_column, sequence_token_logprobs

    if args.arm == "logits":
        logprobs.output_layer = lambda model: None
    cfg = load_config(REPO / args.config)
    model = AutoModelForCausalLM.from_pretrained(
        str(resolve_model_dir(cfg.model.source)), dtype=getattr(torch, args.dtype)
    )
    model.config.use_cache = False
    model.train()
    _, batch = make_batch(1, args.rows, args.prompt_tokens, args.tokens, model.config.vocab_size)

    def resident_mib() -> int:
        with open("/proc/self/status") as f:
            return next(int(x.split()[1]) // 1024 for x in f if x.startswith("VmRSS"))

    passes = []
    for _ in range(args.repeats):
        model.zero_grad(set_to_none=True)
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        before = resident_mib()
        peak, done = [before], threading.Event()

        def sample(peak=peak, done=done):
            while not done.is_set():
                peak[0] = max(peak[0], resident_mib())
                time.sleep(0.01)

        sampler = threading.Thread(target=sample)
        sampler.start()
        start = time.perf_counter()
        logp, _ = sequence_token_logprobs(
            model,
            batch.input_ids,
            batch.attention_mask,
            with_entropy=True,
            first_target=first_response_column(batch.response_mask),
        )
        (logp * batch.response_mask).sum().backward()
        seconds = time.perf_counter() - start
        done.set()
        sampler.join()
        passes.append({"peak_above_mib": peak[0] - before, "seconds": round(seconds, 3)})
    return {"padded_width": batch.input_ids.shape[1], "passes": passes}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rows", type=int, default=4)
    p.add_argument("--tokens", type=int, default=1024, help="longest response")
    p.add_argument("--prompt-tokens", type=int, default=40)
    p.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3, help="passes per run (the first warms up)")
    p.add_argument("--config", default="configs/smollm2-cpu.yaml")
    p.add_argument("--arm", choices=ARMS, help=argparse.SUPPRESS)  # one run, in a child process
    args = p.parse_args(argv)
    if args.arm:
        print(json.dumps(one_run(args)))
        return 0
    runs = {arm: [] for arm in ARMS}
    for r in range(args.rounds):
        for arm in ARMS:
            cmd = [sys.executable, __file__, *(argv or sys.argv[1:]), "--arm", arm]
            out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=os.environ)
            if out.returncode:
                sys.stderr.write(out.stderr)
                raise SystemExit(f"{arm} run failed (exit {out.returncode})")
            runs[arm].append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"round {r} {arm}: {runs[arm][-1]['passes']}", file=sys.stderr, flush=True)
    from rlmr.config import load_config

    later = {arm: [p for run in rs for p in run["passes"][1:]] for arm, rs in runs.items()}
    result = {
        **header(
            load_config(REPO / args.config),
            1,
            args.rows,
            max_response_tokens=args.tokens,
            prompt_tokens=args.prompt_tokens,
            dtype=args.dtype,
            padded_width=runs["chunked"][0]["padded_width"],
        ),
        "runs": runs,
        "median_after_first_pass": {
            arm: {
                "peak_above_mib": statistics.median(p["peak_above_mib"] for p in ps),
                "seconds": statistics.median(p["seconds"] for p in ps),
            }
            for arm, ps in later.items()
        },
    }
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

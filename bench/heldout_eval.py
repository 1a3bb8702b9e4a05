"""Held-out constraint evaluation of policies side by side: the base model and trained checkpoints.

    python bench/heldout_eval.py --config configs/smollm2-cpu.yaml \
        --policy base= --policy rlmr=runs/smollm2-cpu/checkpoints/step_000034/policy \
        --policy writing_only=runs/smollm2-writing-only/checkpoints/step_000034/policy --samples 4

Every policy answers the same held-out prompts with the same sampling seed and
settings (the config's rollout section), one process, HF engine on CPU; the
real verifier checks every response. Prints JSON: per policy the pass rate,
share of constraints met, mean length, pass rate per constraint type; and for
each trained policy against the base, a paired sign test on prompts (how many
prompts gained passing samples, how many lost, and the two-sided p-value).
`base=` (empty path) is the config's own model.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rlmr.judge.evaluation import sign_test  # noqa: E402 (after the path line)


def evaluate(engine, rows, cfg, samples: int, seed: int) -> dict:
    from rlmr.training.rollout import sample_groups, sampling_params
    from rlmr.verify import VerifyGroup, verify_groups

    params = sampling_params(cfg.rollout, n=samples, seed=seed)
    t0 = time.perf_counter()
    groups = sample_groups(engine, rows, params, chat_template=cfg.model.chat_template)
    checks = verify_groups(
        [VerifyGroup(g.row.constraints, g.texts) for g in groups],
        judge_directed_text=cfg.reward.verifier.judge_directed_text,
    )
    per_type = defaultdict(lambda: [0, 0])
    passed_per_prompt, flags, fractions, lengths = [], [], [], []
    for g, check in zip(groups, checks):
        passed_per_prompt.append(sum(r.passed for r in check.responses))
        for resp, rc in zip(g.responses, check.responses):
            flags.append(rc.passed)
            fractions.append(rc.fraction_passed)
            lengths.append(len(resp.token_ids))
            for res in rc.results:
                if res.verdict.value != "unverifiable":
                    per_type[res.type][0] += res.verdict.value == "pass"
                    per_type[res.type][1] += 1
    return {
        "responses": len(flags),
        "pass_rate": sum(flags) / len(flags),
        "passed_fraction_mean": sum(fractions) / len(fractions),
        "response_len_mean": sum(lengths) / len(lengths),
        "pass_rate_by_type": {t: round(p / n, 4) for t, (p, n) in sorted(per_type.items())},
        "checks_by_type": {t: n for t, (_, n) in sorted(per_type.items())},
        "seconds": round(time.perf_counter() - t0, 1),
        "_passed_per_prompt": passed_per_prompt,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True)
    p.add_argument(
        "--policy",
        action="append",
        required=True,
        metavar="NAME=PATH",
        help="a policy folder (HF format) to evaluate; NAME= with no path is the config's model",
    )
    p.add_argument("--samples", type=int, default=4, help="responses per held-out prompt")
    p.add_argument("--seed", type=int, default=1234)
    args = p.parse_args(argv)

    from rlmr.config import LocalModel, load_config
    from rlmr.engine.hf import HFEngine
    from rlmr.training.rollout import load_prompt_sets

    cfg = load_config(args.config)
    _, heldout = load_prompt_sets(cfg)
    results = {}
    for spec in args.policy:
        name, _, path = spec.partition("=")
        source = LocalModel(path=path) if path else cfg.model.source
        engine = HFEngine.from_source(
            source,
            dtype=cfg.model.dtype,
            device="cpu",
            batch_size=cfg.rollout.engine.batch_size,
            max_model_len=cfg.model.max_model_len,
        )
        results[name] = evaluate(engine, heldout, cfg, args.samples, args.seed)
        print(
            f"{name}: pass rate {results[name]['pass_rate']:.3f} ({results[name]['seconds']} s)",
            file=sys.stderr,
        )
    base_name = args.policy[0].partition("=")[0]
    base = results[base_name]["_passed_per_prompt"]
    comparisons = {}
    for name, r in results.items():
        if name == base_name:
            continue
        mine = r["_passed_per_prompt"]
        wins = sum(m > b for m, b in zip(mine, base))
        losses = sum(m < b for m, b in zip(mine, base))
        comparisons[f"{name}_vs_{base_name}"] = {
            "prompts_better": wins,
            "prompts_worse": losses,
            "prompts_same": len(base) - wins - losses,
            "sign_test_p": round(sign_test(wins, losses), 4),
            "pass_rate_change": round(r["pass_rate"] - results[base_name]["pass_rate"], 4),
        }
    for r in results.values():
        r.pop("_passed_per_prompt")
    print(
        json.dumps(
            {
                "config": args.config,
                "heldout_prompts": len(heldout),
                "samples_per_prompt": args.samples,
                "seed": args.seed,
                "policies": results,
                "paired": comparisons,
            },
            indent=1,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Judge GRPO with and without entropy shaping, side by side, judged on held-out pairs.

    rlmr genrm build-pairs --out data/genrm --limit 100      # once
    python bench/judge_shaping.py --minutes 12               # about 40 minutes on 2 CPU cores

One run of `configs/genrm-smollm2-cpu.yaml` with `judge.shaping.floor: 0.5`
(shaped) and one with `floor: 1` (no shaping), each for the same wall-clock
budget, one after the other on the same machine. Before and after, `rlmr judge`
judges every held-out pair (prompts never trained on) in both orders. Prints
JSON: per judge the agreement overall and per family, position consistency and
ECE; for each trained judge against the untrained one the paired difference in
agreement with a 95% bootstrap interval and an exact sign test, overall and per
family. Writes the per-pair results, both runs and an overlay of their curves
to `--out`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rlmr.data.jsonl import read_jsonl  # noqa: E402 (after the path line)
from rlmr.data.pairs import load_pairs  # noqa: E402
from rlmr.judge.evaluation import (  # noqa: E402
    agreement,
    compare_agreement,
    expected_calibration_error,
)

CONFIG = "configs/genrm-smollm2-cpu.yaml"
RUNS = {"shaped": 0.5, "unshaped": 1.0}


def rlmr(*args: str) -> None:
    print("$ rlmr " + " ".join(args), file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-m", "rlmr.cli", *args], cwd=REPO, check=True)


def judge(pairs: Path, out: Path, model: str | None, budget: int) -> list[dict]:
    """Every held-out pair judged greedily in both orders, verdict token only, with the prompt
    budget of the config's `judge.max_judge_len`."""
    args = ["judge", "--pairs", str(pairs), "--no-reasoning", "--max-judge-len", str(budget)]
    args += ["--no-progress", "--output", str(out)]
    rlmr(*args, *(["--model", model] if model else []))
    return read_jsonl(out)


def summary(pairs, rows: list[dict]) -> dict:
    ps = [r["p_chosen"] for r in rows]
    flags = [r["consistent"] for r in rows if r["consistent"] is not None]
    kinds = sorted({q.kind for q in pairs})
    return {
        "agreement": round(agreement(ps), 4),
        "by_kind": {
            k: round(agreement([p for q, p in zip(pairs, ps) if q.kind == k]), 4) for k in kinds
        },
        "position_consistency": round(sum(flags) / len(flags), 4) if flags else None,
        "ece": round(expected_calibration_error(ps), 4),
    }


def comparison(pairs, before: list[dict], after: list[dict]) -> dict:
    def one(idx):
        c = compare_agreement(
            [before[i]["p_chosen"] for i in idx], [after[i]["p_chosen"] for i in idx]
        )
        return {
            "diff": round(c.after - c.before, 4),
            "ci95": [round(c.low, 4), round(c.high, 4)],
            "better": c.better,
            "worse": c.worse,
            "sign_test_p": round(c.p_value, 4),
        }

    out = {"all": one(range(len(pairs)))}
    for kind in sorted({q.kind for q in pairs}):
        out[kind] = one([i for i, q in enumerate(pairs) if q.kind == kind])
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=REPO / "data" / "genrm")
    p.add_argument("--minutes", type=float, default=12, help="training wall clock per run")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "judge-shaping")
    args = p.parse_args(argv)
    heldout = args.data / "heldout.jsonl"
    if not heldout.is_file():
        p.error(f"{heldout}: missing; run `rlmr genrm build-pairs --out {args.data}` first")
    args.out.mkdir(parents=True, exist_ok=True)
    pairs = load_pairs(heldout)
    from rlmr.config import load_config

    budget = load_config(REPO / CONFIG).judge.max_judge_len
    before_file = args.out / "before.jsonl"  # kept from an interrupted run: the same judge
    if before_file.is_file() and len(read_jsonl(before_file)) == len(pairs):
        before = read_jsonl(before_file)
    else:
        before = judge(heldout, before_file, None, budget)
    report = {"heldout_pairs": len(pairs), "minutes_per_run": args.minutes}
    report["untrained"] = summary(pairs, before)
    metrics = {}
    for name, floor in RUNS.items():
        run = f"genrm-smollm2-{name}"
        rlmr(
            "train",
            CONFIG,
            *("--set", f"judge.shaping.floor={floor}", "--set", f"logging.run_name={run}"),
            *("--set", f"logging.output_dir={args.out / 'runs'}"),
            *("--set", f"data.train={args.data / 'train.jsonl'}", "--set", f"data.eval={heldout}"),
            *("--set", f"trainer.max_wall_minutes={args.minutes}", "--set", "trainer.eval_every=0"),
            *("--set", "trainer.eval_at_start=false"),
        )
        metrics[name] = read_jsonl(args.out / "runs" / run / "metrics.jsonl")
        after = judge(
            heldout, args.out / f"after-{name}.jsonl", str(args.out / "runs" / run), budget
        )
        report[name] = {
            "floor": floor,
            "steps": max(m["step"] for m in metrics[name]),
            **summary(pairs, after),
            "vs_untrained": comparison(pairs, before, after),
        }
    from rlmr.training.plots import plot_metrics

    plot_metrics(metrics, args.out / "curves.png", title="judge GRPO: shaped vs unshaped")
    (args.out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

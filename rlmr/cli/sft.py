"""`rlmr sft`: the judge's supervised cold start on distilled chains, before its GRPO (RLCS).

    rlmr sft configs/genrm-tiny.yaml --set trainer.steps=2
    rlmr sft configs/genrm-smollm2-cpu.yaml
    rlmr sft CONFIG --resume                       # continue from the last complete checkpoint

Trains the config's model (`task: judge`) on `judge.sft.data` (rows with
`prompt` and `completion`, e.g. from `rlmr genrm distill`) for
`judge.sft.epochs` passes, `rollout.prompts_per_step * rollout.n` rows a step,
with the loss on the completion tokens only. It uses the policy learner,
checkpoints and resume of `rlmr train`, in the run directory
`<logging.run_name>-sft`, and evaluates the judge on `data.eval` pairs like
judge training does. The policy it ends with is where judge GRPO starts:

    rlmr train CONFIG --set model.source="{type: local, path: RUN-sft/checkpoints/step_N/policy}"
"""

from __future__ import annotations

import sys

from rlmr.cli.train import add_arguments  # the same options: CONFIG, --set, --resume, --address


def sft_plan(cfg):
    """(the config as SFT runs it, the SFT rows, the held-out pairs): `trainer.steps` becomes the
    steps `judge.sft.epochs` passes take (at most the configured steps), the run directory
    `<run_name>-sft`. Raises `ValueError` or `DataError` before anything starts."""
    from rlmr.data.pairs import load_pairs, load_sft_rows
    from rlmr.training.sft import sft_steps

    sft = cfg.judge.sft
    if cfg.task != "judge" or not sft.data:
        raise ValueError("rlmr sft needs task: judge and judge.sft.data (the SFT rows)")
    rows = load_sft_rows(sft.data)
    eval_pairs = load_pairs(cfg.data.eval) if cfg.data.eval else []
    batch = cfg.rollout.prompts_per_step * cfg.rollout.n
    steps = sft_steps(len(rows), sft.epochs, batch, cfg.trainer.steps)
    trainer = cfg.trainer.model_copy(update={"steps": steps})
    logging = cfg.logging.model_copy(update={"run_name": cfg.logging.run_name + "-sft"})
    return cfg.model_copy(update={"trainer": trainer, "logging": logging}), rows, eval_pairs


def run(args) -> int:
    from functools import partial

    from rlmr.cli.train import run_on_ray
    from rlmr.config import load_config
    from rlmr.data.files import DataError
    from rlmr.engine.loading import load_tokenizer
    from rlmr.training.judge_task import judge_evaluate
    from rlmr.training.run_dir import RunDir, RunDirError
    from rlmr.training.sft import sft_step

    cfg = load_config(args.config, args.overrides)
    try:
        cfg, rows, eval_pairs = sft_plan(cfg)
        run_dir = RunDir(cfg, resume={"always": True, "auto": "auto", None: False}[args.resume])
    except (DataError, RunDirError, ValueError) as err:
        print(f"rlmr sft: {args.config}: {err}", file=sys.stderr)
        return 2
    batch = cfg.rollout.prompts_per_step * cfg.rollout.n
    print(
        f"rlmr sft: run directory {run_dir.path} ({len(rows)} rows, "
        f"{cfg.trainer.steps} steps of {batch})",
        file=sys.stderr,
    )

    def evaluate(cfg, services, pairs, step):  # SFT steps do not move the engines: sync first
        services.sync_weights()
        return judge_evaluate(cfg, services, pairs, step)

    tokenizer = load_tokenizer(cfg.model.source)
    logged = run_on_ray(
        cfg,
        args.address,
        run_dir,
        rows,
        eval_pairs,
        step_fn=partial(sft_step, tokenizer=tokenizer),
        eval_fn=evaluate,
    )
    last = logged[-1] if logged else {}
    latest = run_dir.latest_checkpoint()
    summary = {k: last[k] for k in ("step", "sft/nll", "eval/agreement") if k in last}
    print(
        f"rlmr sft: done; {summary}; policy in {latest / 'policy' if latest else None}",
        file=sys.stderr,
    )
    return 0


__all__ = ["add_arguments", "run", "sft_plan"]

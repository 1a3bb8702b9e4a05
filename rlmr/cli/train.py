"""`rlmr train`: validate everything locally, start or join Ray, build the actors, run the driver.

    rlmr train configs/smollm2-cpu.yaml                 # local Ray on this machine
    rlmr train configs/tiny.yaml --set trainer.steps=2  # seconds
    rlmr train CONFIG --address auto                    # join a cluster started with `ray start`
    rlmr train CONFIG --resume                          # continue from the last complete checkpoint
    rlmr train CONFIG --resume auto                     # resume if a checkpoint exists, else start

The config and the prompt files are checked before Ray starts, so a typo
costs a second, not a cluster start-up.
"""

from __future__ import annotations

import contextlib
import os
import sys


def add_arguments(p) -> None:
    from rlmr.cli import add_config_args

    add_config_args(p)
    p.add_argument(
        "--resume",
        nargs="?",
        const="always",
        choices=("always", "auto"),
        default=None,
        help="continue from the run directory's last complete checkpoint; `--resume auto` starts "
        "fresh when there is none (for job retries)",
    )
    p.add_argument(
        "--address",
        default=None,
        help="Ray cluster to join ('auto' for one started with `ray start`); "
        "default: start a local Ray",
    )


def init_ray(address: str | None, cfg) -> None:
    import ray

    from actors.process import MALLOC_SETTINGS

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Inside `ray job submit`, RAY_ADDRESS names the cluster the job runs on.
    local = address is None and not os.environ.get("RAY_ADDRESS")
    if local:  # a cluster private to this process: no token to manage, no dashboard
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    # A job's own runtime env (ray job submit) may set variables too: merge, don't refuse.
    os.environ.setdefault("RAY_OVERRIDE_JOB_RUNTIME_ENV", "1")
    passed = (
        ("RLMR_CACHE", "TORCH_EXTENSIONS_DIR", "HF_HOME")
        + MALLOC_SETTINGS
        + (("RAY_AUTH_MODE",) if local else ())
    )
    env = {k: os.environ[k] for k in passed if k in os.environ}
    env["HF_HUB_OFFLINE"] = "1"
    env["TOKENIZERS_PARALLELISM"] = "false"
    kwargs = {"runtime_env": {"env_vars": env}, "log_to_driver": True}
    if local:
        # No worker started ahead of the first actor: in a colocated run it sat idle through
        # the whole run (`ray::IDLE`, 45 MiB; every actor here starts a worker of its own).
        kwargs.update(
            include_dashboard=False,
            num_gpus=cfg.cluster.gpus_per_node or None,
            _system_config={"prestart_worker_first_driver": False},
        )
    ray.init(address=address, **kwargs)


def check_local_gpus(cfg, address: str | None) -> None:
    """A GPU layout run on this machine alone (no cluster to join) needs those GPUs here; Ray would
    otherwise wait for them until `cluster.startup_timeout_s`."""
    if address is not None or os.environ.get("RAY_ADDRESS") or cfg.cluster.gpus_per_node == 0:
        return
    import torch

    have = torch.cuda.device_count()
    need = cfg.cluster.nodes * cfg.cluster.gpus_per_node
    if have < need:
        raise ValueError(
            f"cluster.gpus_per_node: the layout needs {cfg.cluster.nodes} x "
            f"{cfg.cluster.gpus_per_node} GPUs, this machine has {have} and no --address names a "
            "cluster to join"
        )


def prompt_sets(cfg):
    """The run's training and held-out prompts, checked (constraints, lengths by the policy's
    tokenizer), read in a short-lived process of their own: the tokenizer brings transformers and
    its chat templates (about 125 MiB), which the driver, alive for the whole run, never needs
    again. Errors come back as they were raised there."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    if cfg.task == "judge":
        from rlmr.training.judge_task import judge_prompt_sets as read
    else:
        from rlmr.training.rollout import load_prompt_sets as read
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as apart:
        return apart.submit(read, cfg).result()


def run(args) -> int:
    from rlmr.config import load_config
    from rlmr.data.files import DataError
    from rlmr.engine.loading import ModelLoadError
    from rlmr.training.run_dir import RunDir, RunDirError

    cfg = load_config(args.config, args.overrides)
    try:
        check_local_gpus(cfg, args.address)
        train_rows, eval_rows = prompt_sets(cfg)
        run_dir = RunDir(cfg, resume={"always": True, "auto": "auto", None: False}[args.resume])
    except ModelLoadError as err:  # the tokenizer is read here, before Ray starts
        print(f"rlmr train: model.source: {err}", file=sys.stderr)
        return 2
    except (DataError, RunDirError, ValueError) as err:  # ValueError: a judge prompt cannot fit
        print(f"rlmr train: {err}", file=sys.stderr)
        return 2
    print(
        f"rlmr train: run directory {run_dir.path} ({len(train_rows)} training prompts, "
        f"{len(eval_rows)} held-out)",
        file=sys.stderr,
    )
    from actors.group import ActorFailed
    from rlmr.training.driver import TrainingHalted
    from rlmr.training.stop import StopSignals

    try:
        stop = StopSignals()
        loop = {"stop": stop}
        if cfg.task == "policy" and cfg.trainer.eval.suites:
            from rlmr.evals.suites import with_suites

            loop["eval_fn"] = with_suites(run_dir.path)
        rows = run_on_ray(cfg, args.address, run_dir, train_rows, eval_rows, **loop)
    except TrainingHalted as err:
        print(f"rlmr train: stopped: {err}", file=sys.stderr)
        return 1
    except ActorFailed as err:
        print(
            f"rlmr train: stopped: {err}; continue from the last complete checkpoint "
            f"({run_dir.latest_checkpoint() or 'none yet'}) with --resume",
            file=sys.stderr,
        )
        return 1
    if stop.received:
        return stop.exit_code
    last = rows[-1] if rows else {}
    keys = ("step", "reward_mean", "pass_rate", "eval/pass_rate", "eval/agreement")
    summary = {k: last[k] for k in keys if k in last}
    print(f"rlmr train: done; {summary}; curves in {run_dir.path / 'curves.png'}", file=sys.stderr)
    return 0


def run_on_ray(cfg, address, run_dir, train_rows, eval_rows, **loop) -> list[dict]:
    """Start (or join) Ray, place the run's actors, run the loop, and stop what was started."""
    import ray

    from actors.services import RayServices
    from rlmr.training.driver import run_training

    init_ray(address, cfg)
    services = None
    # Ray installs its own SIGTERM handler in ray.init: ours go in after it.
    with loop.get("stop") or contextlib.nullcontext():
        try:
            services = RayServices(cfg)
            return run_training(cfg, services, run_dir, train_rows, eval_rows, **loop)
        finally:
            if services is not None:
                services.shutdown()
            ray.shutdown()

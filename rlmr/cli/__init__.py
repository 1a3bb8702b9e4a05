"""The `rlmr` command line.

    rlmr train CONFIG [--set KEY=VALUE ...] [--resume] [--address ADDR]
    rlmr config CONFIG [--set KEY=VALUE ...]     validate a config and print it resolved
    rlmr verify ifeval --input F --output-dir D  check IFEval-format responses
    rlmr judge --pairs F                         evaluate a GenRM judge on preference pairs
    rlmr report RUN_DIR [RUN_DIR ...] -o OUT     curves and a summary of runs, overlaid
    rlmr eval MODEL --suite ifeval|ifbench|constraints|pairwise|rubric
                                                 benchmarks on a model, checkpoint or run

Subcommands import their heavy dependencies (torch, Ray, transformers) only
after the arguments are parsed, so `rlmr --help` and config validation answer
at once.
"""

from __future__ import annotations

import argparse
import importlib
import sys


def add_config_args(p: argparse.ArgumentParser) -> None:
    """The positional CONFIG and repeatable --set KEY=VALUE, shared by every subcommand that takes a
    run config."""
    p.add_argument("config", help="YAML config file, e.g. configs/tiny.yaml")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="dotted override, repeatable: --set algo.clip.high=0.28",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rlmr",
        description="RL for creative writing: RLMR mixed rewards + RLCS GenRM.",
        allow_abbrev=False,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "config",
        help="validate a config and print it with every default filled in",
        allow_abbrev=False,
    )
    add_config_args(p)
    p.add_argument("--quiet", action="store_true", help="only validate; print nothing on success")
    # Subcommands owned by their packages: each module exposes add_arguments(parser)
    # and run(args) -> int, imported lazily so --help stays instant.
    for name, (_, helptext) in _DELEGATED.items():
        p = sub.add_parser(name, help=helptext, allow_abbrev=False)
        _delegate(name).add_arguments(p)
    return parser


_DELEGATED = {
    "train": (
        "rlmr.cli.train",
        "train a policy with RLMR, or a judge (task: judge) with RLCS; local Ray or --address",
    ),
    "verify": (
        "rlmr.cli.verify",
        "check responses against constraints (e.g. `rlmr verify ifeval --input F --output-dir D`)",
    ),
    "judge": ("rlmr.cli.judge", "evaluate a generative reward model on preference pairs"),
    "sft": (
        "rlmr.cli.sft",
        "supervised cold start of a judge on distilled chains (task: judge), before its GRPO",
    ),
    "eval": (
        "rlmr.cli.eval",
        "benchmarks (ifeval, constraints) on a model, a checkpoint, a run or the base model",
    ),
    "report": (
        "rlmr.cli.report",
        "curves (PNG) and a Markdown summary of one or more run directories, overlaid",
    ),
    "genrm": (
        "rlmr.cli.genrm",
        "make the judge's training data: preference pairs, distilled reasoning chains",
    ),
}


def _delegate(name: str):
    return importlib.import_module(_DELEGATED[name][0])


def cmd_config(args) -> int:
    import yaml

    from rlmr.config import load_config, to_dict

    cfg = load_config(args.config, args.overrides)
    if not args.quiet:
        sys.stdout.write(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    return 0


COMMANDS = {"config": cmd_config}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from rlmr.config import ConfigError

    try:
        if args.command in _DELEGATED:
            return _delegate(args.command).run(args)
        return COMMANDS[args.command](args)
    except ConfigError as err:
        print(f"rlmr {args.command}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

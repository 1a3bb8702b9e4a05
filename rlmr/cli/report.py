"""`rlmr report RUN_DIR [RUN_DIR ...] [-o OUT] [--labels ...]`: curves and a Markdown summary of
training runs (see `rlmr.training.report`)."""

from __future__ import annotations

import sys
from pathlib import Path


def add_arguments(p) -> None:
    p.add_argument("runs", nargs="+", type=Path, help="run directories (each has metrics.jsonl)")
    p.add_argument("-o", "--out", type=Path, default=Path("report"), help="output folder")
    p.add_argument("--labels", nargs="*", help="one label per run (default: the folder names)")


def run(args) -> int:
    from rlmr.training.report import ReportError, load_run, write_report

    labels = args.labels or [None] * len(args.runs)
    if len(labels) != len(args.runs):
        print(
            f"rlmr report: --labels: {len(labels)} label(s) for {len(args.runs)} run(s)",
            file=sys.stderr,
        )
        return 2
    try:
        runs = [load_run(path, label) for path, label in zip(args.runs, labels)]
    except ReportError as err:
        print(f"rlmr report: {err}", file=sys.stderr)
        return 2
    for path in write_report(runs, args.out):
        print(path)
    return 0

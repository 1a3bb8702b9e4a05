"""The README's evaluation table from `rlmr eval` output folders, side by side.

    python bench/eval_table.py base=evals/base rlmr=evals/rlmr [--copy bench/results/evals-smollm2]

Reads `<folder>/<suite>/summary.json` for every suite a folder holds and prints one Markdown
row per figure, each model's value with its 95% bootstrap interval. `--copy` keeps the summaries
(not the responses) under one folder per label, for the repository.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

# (suite, figure key, heading)
FIGURES = (
    ("ifeval", "prompt_strict", "IFEval prompt-level strict"),
    ("ifeval", "instruction_strict", "IFEval instruction-level strict"),
    ("ifeval", "prompt_loose", "IFEval prompt-level loose"),
    ("ifeval", "instruction_loose", "IFEval instruction-level loose"),
    ("ifbench", "prompt_strict", "IFBench prompt-level strict"),
    ("ifbench", "instruction_strict", "IFBench instruction-level strict"),
    ("constraints", "pass_rate", "held-out constraint pass rate"),
    ("pairwise", "win_rate", "win rate against the base model (GenRM, both orders)"),
    ("rubric", "score", "WritingBench-style rubric score (1-10)"),
)


def cell(summary: dict | None, key: str) -> str:
    if summary is None or key not in summary:
        return ""
    v = summary[key]
    return f"{v['value']:.3f} [{v['ci95'][0]:.3f}, {v['ci95'][1]:.3f}]"


def table(folders: dict[str, Path]) -> str:
    summaries = {
        label: {
            p.parent.name: json.loads(p.read_text(encoding="utf-8"))
            for p in sorted(folder.glob("*/summary.json"))
        }
        for label, folder in folders.items()
    }
    lines = [
        "| figure | n | " + " | ".join(folders) + " |",
        "|---|---|" + "---|" * len(folders),
    ]
    for suite, key, heading in FIGURES:
        row = [summaries[label].get(suite) for label in folders]
        if not any(s and key in s for s in row):
            continue
        n = next(
            s.get("pairs") or s.get("checked") or s.get("queries") or s.get("prompts")
            for s in row
            if s and key in s
        )
        lines.append(f"| {heading} | {n} | " + " | ".join(cell(s, key) for s in row) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", metavar="LABEL=FOLDER")
    p.add_argument("--copy", type=Path, help="keep the summaries here, one folder per label")
    args = p.parse_args(argv)
    folders = {}
    for spec in args.runs:
        label, sep, folder = spec.partition("=")
        if not sep or not Path(folder).is_dir():
            print(
                f"eval_table: {spec}: expected LABEL=FOLDER (an existing folder)", file=sys.stderr
            )
            return 2
        folders[label] = Path(folder)
    print(table(folders))
    if args.copy:
        for label, folder in folders.items():
            for summary in folder.glob("*/summary.json"):
                dest = args.copy / label / summary.parent.name / "summary.json"
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(summary, dest)
    return 0


if __name__ == "__main__":
    sys.exit(main())

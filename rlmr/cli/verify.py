"""`rlmr verify`: check responses against constraints from the command line.

    rlmr verify ifeval --input input_data.jsonl [--responses responses.jsonl] --output-dir DIR
        IFEval rows (prompt, instruction_id_list, kwargs, response) -> eval_results_strict.jsonl and
        eval_results_loose.jsonl in the reference's format; prints the four accuracies and a table
        per instruction type. Bad rows are reported by line number; the others are still checked.
    rlmr verify check --input rows.jsonl [--output results.jsonl] [--loose] [--no-judge-guard]
        rows with `response` and `constraints` ([{"type": ..., **kwargs}]) -> one verdict record
        per row.
    rlmr verify types
        every constraint type with its kwargs.

Exit status: 0 when every row was checked, 1 when some rows were rejected (or none was valid),
2 when an input file cannot be read. Nothing heavy is imported until a subcommand runs.
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(
        dest="verify_command", required=True, metavar="{ifeval,check,types}"
    )
    p = sub.add_parser(
        "ifeval", help="IFEval strict/loose evaluation, in the reference's output format"
    )
    p.add_argument(
        "--input", required=True, help="JSONL rows: prompt, instruction_id_list, kwargs[, response]"
    )
    p.add_argument(
        "--responses", help="JSONL {prompt, response} lines, for input rows without a response"
    )
    p.add_argument(
        "--output-dir", required=True, help="where eval_results_strict.jsonl / _loose.jsonl go"
    )
    p.add_argument("--quiet", action="store_true", help="print only the four accuracies")
    p = sub.add_parser("check", help="check rows of {response, constraints}")
    p.add_argument("--input", required=True, help="JSONL rows with `response` and `constraints`")
    p.add_argument("--output", help="JSONL verdicts, one per valid row (default: stdout)")
    p.add_argument("--loose", action="store_true", help="IFEval loose variants for IFEval types")
    p.add_argument(
        "--no-judge-guard", action="store_true", help="do not add the judge-directed-text guard"
    )
    sub.add_parser("types", help="list constraint types and their kwargs")


def run(args) -> int:
    return {"ifeval": _run_ifeval, "check": _run_check, "types": _run_types}[args.verify_command](
        args
    )


def _fail(message: str) -> int:
    print(f"rlmr verify: {message}", file=sys.stderr)
    return 2


def _run_ifeval(args) -> int:
    from rlmr.verify.constraints import ConstraintError
    from rlmr.verify.ifeval_eval import (
        evaluate_rows,
        format_report,
        read_ifeval_rows,
        read_responses,
        write_outputs,
    )

    try:
        responses = read_responses(args.responses) if args.responses else None
        rows, problems = read_ifeval_rows(args.input, responses)
    except (OSError, ConstraintError) as exc:
        return _fail(str(exc))
    for problem in problems:
        print(f"rlmr verify ifeval: {args.input}: {problem}", file=sys.stderr)
    if not rows:
        print(f"rlmr verify ifeval: {args.input}: no valid rows", file=sys.stderr)
        return 1
    report = evaluate_rows(rows, problems)
    strict_path, loose_path = write_outputs(report, args.output_dir)
    text = format_report(report)
    print(text.split("\n\n")[0] if args.quiet else text)
    print(f"wrote {strict_path} and {loose_path}")
    return 1 if problems else 0


def _run_check(args) -> int:
    import json

    from rlmr.data.jsonl import iter_jsonl
    from rlmr.verify.api import verify_batch
    from rlmr.verify.constraints import ConstraintError, parse_constraints

    items, ids, problems = [], [], []
    try:
        lines = list(iter_jsonl(args.input))
    except OSError as exc:
        return _fail(str(exc))
    for line_no, row, problem, _ in lines:
        if problem:
            problems.append(f"line {line_no}: {problem}")
            continue
        if not isinstance(row.get("response"), str):
            problems.append(f"line {line_no}: response: required string field is missing")
            continue
        try:
            constraints = parse_constraints(row.get("constraints"), row=line_no)
        except ConstraintError as exc:
            problems.append(str(exc).replace(f"row {line_no}", f"line {line_no}", 1))
            continue
        items.append((row["response"], constraints))
        ids.append(row.get("id", line_no))
    for problem in problems:
        print(f"rlmr verify check: {args.input}: {problem}", file=sys.stderr)
    checks = verify_batch(items, loose=args.loose, judge_directed_text=not args.no_judge_guard)
    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
    try:
        for row_id, check in zip(ids, checks):
            out.write(json.dumps({"id": row_id, **check.to_dict()}) + "\n")
    finally:
        if args.output:
            out.close()
    passed = sum(c.passed for c in checks)
    print(
        f"{len(checks)} rows checked, {passed} passed every constraint, {len(problems)} rejected",
        file=sys.stderr,
    )
    return 1 if problems or not checks else 0


def _run_types(args) -> int:
    from rlmr.verify.constraints import registry

    for name, ctype in sorted(registry().items()):
        kwargs = (
            ", ".join(f"{k}{'' if spec.required else '?'}" for k, spec in ctype.kwargs.items())
            or "(no kwargs)"
        )
        print(f"{name:48s} [{ctype.family}] {kwargs}")
        if ctype.description:
            print(f"{'':48s} {ctype.description}")
    return 0

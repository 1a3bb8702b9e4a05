"""IFEval evaluation: read IFEval rows, compute strict and loose verdicts, report and write them as
the reference does.

Rows are JSON lines with `prompt`, `instruction_id_list`, `kwargs` and
`response`; the response may instead come from a second file of
`{"prompt", "response"}` lines, matched by prompt text (the layout of the
published IFEval data). A row with a missing field, an unknown instruction id
or bad kwargs is reported with its line number and skipped; the others are
checked. Outputs match the reference's `eval_results_strict.jsonl` /
`eval_results_loose.jsonl` line for line (same keys, same order, same JSON).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from rlmr.data.jsonl import iter_jsonl
from rlmr.verify.constraints import ConstraintError, constraint_type, parse_constraint, registry
from rlmr.verify.ifeval import LooseTexts, loose_verdict, strict_verdict
from rlmr.verify.text import TextStats, run_with_batched_languages

REQUIRED_FIELDS = ("prompt", "instruction_id_list", "kwargs")


@dataclass(frozen=True)
class IFEvalRow:
    line: int
    prompt: str
    instruction_id_list: tuple[str, ...]
    kwargs: tuple[dict, ...]
    response: str
    constraints: tuple = field(repr=False)


@dataclass(frozen=True)
class IFEvalOutcome:
    row: IFEvalRow
    strict: tuple[bool, ...]
    loose: tuple[bool, ...]


@dataclass
class IFEvalReport:
    outcomes: list[IFEvalOutcome]
    problems: list[str]

    def accuracies(self) -> dict[str, float]:
        """prompt_strict, instruction_strict, prompt_loose, instruction_loose."""
        out = {}
        for mode in ("strict", "loose"):
            verdicts = [getattr(o, mode) for o in self.outcomes]
            n_instr = sum(len(v) for v in verdicts)
            out[f"prompt_{mode}"] = (
                sum(all(v) for v in verdicts) / len(verdicts) if verdicts else 0.0
            )
            out[f"instruction_{mode}"] = sum(sum(v) for v in verdicts) / n_instr if n_instr else 0.0
        return out

    def counts(self) -> dict[str, tuple[int, int]]:
        out = {}
        for mode in ("strict", "loose"):
            verdicts = [getattr(o, mode) for o in self.outcomes]
            out[f"prompt_{mode}"] = (sum(all(v) for v in verdicts), len(verdicts))
            out[f"instruction_{mode}"] = (
                sum(sum(v) for v in verdicts),
                sum(len(v) for v in verdicts),
            )
        return out

    def per_instruction(self) -> dict[str, tuple[int, int, int]]:
        """instruction id -> (count, strict passes, loose passes)."""
        table: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
        for o in self.outcomes:
            for iid, s, lo in zip(o.row.instruction_id_list, o.strict, o.loose):
                entry = table[iid]
                entry[0] += 1
                entry[1] += s
                entry[2] += lo
        return {k: tuple(v) for k, v in sorted(table.items())}


def row_from_json(
    data, line: int, responses: dict[str, str] | None, *, family: str = "ifeval"
) -> IFEvalRow:
    """One row; its instruction ids must be types of `family` ("ifeval", or "ifbench" for
    `rlmr.verify.ifbench_eval`)."""
    if not isinstance(data, dict):
        raise ConstraintError(f"line {line}: expected a JSON object, got {type(data).__name__}")
    for key in REQUIRED_FIELDS:
        if key not in data:
            raise ConstraintError(f"line {line}: {key}: required field is missing")
    prompt, ids, kwargs = data["prompt"], data["instruction_id_list"], data["kwargs"]
    if not isinstance(prompt, str):
        raise ConstraintError(f"line {line}: prompt: must be a string")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise ConstraintError(f"line {line}: instruction_id_list: must be a list of strings")
    if not isinstance(kwargs, list) or len(kwargs) != len(ids):
        raise ConstraintError(
            f"line {line}: kwargs: must be a list with one mapping per instruction "
            f"({len(ids)}), got {kwargs!r:.80}"
        )
    if "response" in data:
        response = data["response"]
    elif responses is not None:
        if prompt not in responses:
            raise ConstraintError(
                f"line {line}: response: no response for this prompt in the responses file"
            )
        response = responses[prompt]
    else:
        raise ConstraintError(
            f"line {line}: response: required field is missing (or pass a responses file)"
        )
    if not isinstance(response, str):
        raise ConstraintError(f"line {line}: response: must be a string")
    constraints = []
    known = registry()
    for i, (iid, kw) in enumerate(zip(ids, kwargs)):
        if iid not in known or constraint_type(iid).family != family:
            raise ConstraintError(
                f"line {line}: instruction_id_list[{i}]: unknown instruction id {iid!r}"
            )
        if not isinstance(kw, dict):
            raise ConstraintError(f"line {line}: kwargs[{i}] ({iid}): must be a mapping")
        try:
            constraints.append(parse_constraint({**kw, "type": iid}))
        except ConstraintError as exc:
            detail = str(exc).split(": ", 1)[1]  # drop the type name parse_constraint puts first
            raise ConstraintError(f"line {line}: kwargs[{i}] ({iid}): {detail}") from None
    return IFEvalRow(line, prompt, tuple(ids), tuple(kwargs), response, tuple(constraints))


def read_responses(path: str | Path) -> dict[str, str]:
    """The reference's prompt -> response mapping (a later line with the same prompt wins)."""
    out = {}
    for line_no, data, problem, _ in iter_jsonl(path):
        if (
            problem is None
            and isinstance(data.get("prompt"), str)
            and isinstance(data.get("response"), str)
        ):
            out[data["prompt"]] = data["response"]
        else:
            raise ConstraintError(
                f"{path}: line {line_no}: not a {{'prompt', 'response'}} object"
                f"{f' ({problem})' if problem else ''}"
            )
    return out


def read_ifeval_rows(
    path: str | Path, responses: dict[str, str] | None = None, *, family: str = "ifeval"
) -> tuple[list[IFEvalRow], list[str]]:
    """Valid rows, and one message per rejected line (`line N: key: problem`); `family` as for
    `row_from_json`."""
    rows, problems = [], []
    for line_no, data, problem, _ in iter_jsonl(path):
        if problem:
            problems.append(f"line {line_no}: {problem}")
            continue
        try:
            rows.append(row_from_json(data, line_no, responses, family=family))
        except ConstraintError as exc:
            problems.append(str(exc))
    return rows, problems


def _verdicts(check, stats: TextStats, args, loose_texts: LooseTexts) -> tuple[bool, bool]:
    ok = strict_verdict(check, stats, args)
    return ok, loose_verdict(check, stats, args, loose_texts, strict=ok)


def evaluate_row(row: IFEvalRow) -> IFEvalOutcome:
    """Strict and loose verdicts of one row, sharing the response's measurements."""
    return evaluate_rows([row]).outcomes[0]


def evaluate_rows(rows: list[IFEvalRow], problems: list[str] | None = None) -> IFEvalReport:
    """Every row's verdicts; the languages the rules read are identified together, 1,024 rows at a
    time (their measurements are held until then)."""
    outcomes = []
    for start in range(0, len(rows), 1024):
        outcomes += _evaluate(rows[start : start + 1024])
    return IFEvalReport(outcomes, list(problems or []))


def _evaluate(rows: list[IFEvalRow]) -> list[IFEvalOutcome]:
    jobs = []
    for row in rows:
        stats = TextStats(row.response, defer_language=True)
        loose_texts = LooseTexts(stats)
        for constraint in row.constraints:
            check = constraint_type(constraint.type).check
            jobs.append(partial(_verdicts, check, stats, constraint.args, loose_texts))
    verdicts = iter(run_with_batched_languages(jobs))
    outcomes = []
    for row in rows:
        pairs = [next(verdicts) for _ in row.constraints]
        outcomes.append(
            IFEvalOutcome(row, tuple(ok for ok, _ in pairs), tuple(lo for _, lo in pairs))
        )
    return outcomes


def write_outputs(report: IFEvalReport, output_dir: str | Path) -> tuple[Path, Path]:
    """eval_results_strict.jsonl and eval_results_loose.jsonl, byte-identical to the reference's
    `write_outputs`."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for mode in ("strict", "loose"):
        path = out / f"eval_results_{mode}.jsonl"
        with open(path, "w", encoding="utf-8") as f:
            for o in report.outcomes:
                verdicts = list(getattr(o, mode))
                record = {  # the reference writes dataclass attributes in dir() order
                    "follow_all_instructions": all(verdicts),
                    "follow_instruction_list": verdicts,
                    "instruction_id_list": list(o.row.instruction_id_list),
                    "prompt": o.row.prompt,
                    "response": o.row.response,
                }
                f.write(json.dumps(record))
                f.write("\n")
        paths.append(path)
    return paths[0], paths[1]


def format_report(report: IFEvalReport, title: str = "IFEval") -> str:
    """The four accuracies and a per-instruction-type table."""
    acc, counts = report.accuracies(), report.counts()
    lines = [f"{title}: {len(report.outcomes)} rows checked, {len(report.problems)} rejected"]
    for key, label in (
        ("prompt_strict", "prompt-level strict"),
        ("instruction_strict", "instruction-level strict"),
        ("prompt_loose", "prompt-level loose"),
        ("instruction_loose", "instruction-level loose"),
    ):
        hit, total = counts[key]
        lines.append(f"{label + ':':27s} {acc[key]:.4f}  ({hit}/{total})")
    lines.append("")
    lines.append(f"{'instruction id':48s} {'n':>4s} {'strict':>7s} {'loose':>7s}")
    for iid, (n, s, lo) in report.per_instruction().items():
        lines.append(f"{iid:48s} {n:4d} {s / n:7.4f} {lo / n:7.4f}")
    return "\n".join(lines)

"""Check a batch of (response, constraints): the one entry point the trainer, the CLI and the Ray
worker use.

    results = verify_batch([(response, [{"type": "creative:word_count", "max": 300}]), ...])
    results[0].passed, results[0].results[0].verdict

Every response gets one `TextStats`, shared by all of its constraints; IFEval and
IFBench types use the loose variants when `loose=True` (IFEval's loose mode: pass if
the response or one of its variants passes). Soft constraints go, in one
batch, to `soft_checker` (a `SoftConstraintChecker`); without one they are
`unverifiable`. The built-in judge-directed-text guard is appended to every
response's results unless `judge_directed_text=False` or the row lists it.
An empty or whitespace-only response fails every constraint but the guard.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from rlmr.core.records import ConstraintOutcome, Verdicts
from rlmr.verify.constraints import (
    Constraint,
    ConstraintError,
    constraint_type,
    parse_constraint,
    parse_constraints,
)
from rlmr.verify.guard import GUARD_TYPE
from rlmr.verify.ifeval import LooseTexts, loose_verdict, strict_verdict
from rlmr.verify.results import ConstraintResult, GroupCheck, ResponseCheck, Verdict
from rlmr.verify.text import TextStats, run_with_batched_languages

# Families with IFEval's strict and loose modes (IFBench's evaluation_lib copies IFEval's).
LOOSE_FAMILIES = ("ifeval", "ifbench")

NO_ENGINE = (
    "soft constraint: no text engine is configured (verifier.soft_constraints: unverifiable)"
)

_GUARD: Constraint | None = None


def guard_constraint() -> Constraint:
    global _GUARD
    if _GUARD is None:
        _GUARD = parse_constraint({"type": GUARD_TYPE})
    return _GUARD


def _as_constraints(raw, item: int) -> tuple[Constraint, ...]:
    if isinstance(raw, tuple) and all(isinstance(c, Constraint) for c in raw):
        return raw
    try:
        return parse_constraints(raw)
    except ConstraintError as exc:
        raise ConstraintError(f"item {item}: {exc}") from None


def _rule_result(
    constraint: Constraint,
    index: int | None,
    stats: TextStats,
    loose: bool,
    loose_texts: LooseTexts | None,
) -> ConstraintResult:
    ctype = constraint_type(constraint.type)
    if ctype.family in LOOSE_FAMILIES:
        ok = strict_verdict(ctype.check, stats, constraint.args)
        if loose and not ok and loose_texts is not None:
            ok = loose_verdict(ctype.check, stats, constraint.args, loose_texts, strict=ok)
        return ConstraintResult(constraint.type, Verdict.PASS if ok else Verdict.FAIL, index)
    if ctype.family == "creative" and stats.is_empty:
        return ConstraintResult(constraint.type, Verdict.FAIL, index, "empty response")
    outcome = ctype.check(stats, constraint.args)
    ok, detail = outcome if isinstance(outcome, tuple) else (outcome, "")
    return ConstraintResult(constraint.type, Verdict.PASS if ok else Verdict.FAIL, index, detail)


def verify_batch(
    items: Sequence[tuple[str, Sequence[Mapping[str, Any] | Constraint]]],
    *,
    loose: bool = False,
    judge_directed_text: bool = True,
    soft_checker=None,
) -> list[ResponseCheck]:
    """Per item (response, constraints): a `ResponseCheck` with one verdict per constraint.

    Constraints may be raw mappings (validated here; a bad one raises
    `ConstraintError` naming the item, the position and the key) or `Constraint`
    records from `parse_constraints` (validated once, at load time).
    """
    rows: list[list[ConstraintResult | None]] = []
    soft_jobs: list[tuple[int, int, str, Constraint]] = []
    rule_jobs: list[tuple[int, int, Callable[[], ConstraintResult]]] = []  # (item, slot, job)
    for item, pair in enumerate(items):
        if not (isinstance(pair, Sequence) and len(pair) == 2):
            raise TypeError(
                f"item {item}: expected a (response, constraints) pair, got {type(pair).__name__}"
            )
        response, raw = pair
        constraints = _as_constraints(raw, item)
        # languages are identified for the whole batch at once (run_with_batched_languages)
        stats = TextStats(response, defer_language=True)
        loose_texts = LooseTexts(stats) if loose else None
        results: list[ConstraintResult | None] = []
        for index, constraint in enumerate(constraints):
            family = constraint_type(constraint.type).family
            if family == "soft":
                if stats.is_empty:
                    results.append(
                        ConstraintResult(constraint.type, Verdict.FAIL, index, "empty response")
                    )
                elif soft_checker is None:
                    results.append(
                        ConstraintResult(constraint.type, Verdict.UNVERIFIABLE, index, NO_ENGINE)
                    )
                else:
                    soft_jobs.append((item, len(results), response, constraint))
                    results.append(None)
            else:
                job = partial(_rule_result, constraint, index, stats, loose, loose_texts)
                rule_jobs.append((item, len(results), job))
                results.append(None)
        if judge_directed_text and not any(c.type == GUARD_TYPE for c in constraints):
            job = partial(_rule_result, guard_constraint(), None, stats, loose, None)
            rule_jobs.append((item, len(results), job))
            results.append(None)
        rows.append(results)
    verdicts = run_with_batched_languages([job for _, _, job in rule_jobs])
    for (item, slot, _), verdict in zip(rule_jobs, verdicts):
        rows[item][slot] = verdict
    if soft_jobs:
        verdicts = soft_checker.check([(response, c) for _, _, response, c in soft_jobs])
        for (item, slot, _, _), verdict in zip(soft_jobs, verdicts):
            rows[item][slot] = replace(verdict, index=slot)
    return [ResponseCheck(tuple(results)) for results in rows]


def verify_response(
    response: str, constraints: Sequence[Mapping[str, Any] | Constraint], **options
) -> ResponseCheck:
    """`verify_batch` for one response."""
    return verify_batch([(response, constraints)], **options)[0]


@dataclass(frozen=True)
class VerifyGroup:
    """One GRPO group: the prompt's constraints, shared by all of its responses (validated once)."""

    constraints: Sequence[Mapping[str, Any] | Constraint]
    responses: Sequence[str]


def verify_groups(
    groups: Sequence[VerifyGroup | Sequence[tuple[str, Any]]], **options
) -> list[GroupCheck]:
    """Check GRPO groups: each is a `VerifyGroup` or a list of (response, constraints) pairs."""
    flat: list[tuple[str, Any]] = []
    sizes = []
    for g, group in enumerate(groups):
        if isinstance(group, VerifyGroup):
            constraints = _as_constraints(group.constraints, g)
            pairs = [(response, constraints) for response in group.responses]
        elif isinstance(group, Sequence) and not isinstance(group, str):
            pairs = list(group)
        else:
            raise TypeError(
                f"group {g}: expected a VerifyGroup or a list of (response, constraints) pairs, "
                f"got {type(group).__name__}"
            )
        flat.extend(pairs)
        sizes.append(len(pairs))
    checks = verify_batch(flat, **options)
    out, start = [], 0
    for size in sizes:
        out.append(GroupCheck(tuple(checks[start : start + size])))
        start += size
    return out


def group_verdicts(check: GroupCheck) -> Verdicts:
    """The driver's `Verdicts` for one checked group.

    `passed[i]`: no checked constraint of response i failed; `passed_fraction[i]`:
    passed / checked constraints. Unverifiable constraints (soft ones without an
    engine) are left out of both and appear in `details` with `passed=None`.
    """
    details = tuple(
        tuple(
            ConstraintOutcome(
                type=r.type,
                index=r.index,
                reason=r.detail,
                passed=None if r.verdict is Verdict.UNVERIFIABLE else r.passed,
            )
            for r in response.results
        )
        for response in check.responses
    )
    return Verdicts(
        passed=tuple(not r.failed for r in check.responses),
        passed_fraction=tuple(r.fraction_passed_checked for r in check.responses),
        details=details,
    )

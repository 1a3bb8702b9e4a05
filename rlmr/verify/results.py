"""What the verifier returns: a verdict per constraint, per response, per group.

Records are frozen dataclasses of plain values, so they pickle cheaply across
Ray actor boundaries. A verdict is one of three values: `pass`, `fail`, or
`unverifiable` (a soft constraint with no text engine, or an engine that put
no probability on yes or no). `ResponseCheck.passed` is true only when every
constraint passed: an unverifiable constraint is never counted as passed;
`failed` is true when at least one constraint failed, so a response can be
neither passed nor failed. The reward (`rlmr.verify.api.group_verdicts`)
counts only checked constraints: unverifiable ones are left out of both the
pass flag and the passed fraction, and listed with `passed: None`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Verdict(str, Enum):
    PASS = "pass"
    FAIL = "fail"
    UNVERIFIABLE = "unverifiable"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class ConstraintResult:
    """The verdict on one constraint; `index` is its position in the row's list (None for the
    built-in guard)."""

    type: str
    verdict: Verdict
    index: int | None = None
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.verdict is Verdict.PASS


@dataclass(frozen=True)
class ResponseCheck:
    """All verdicts on one response, in the order of its constraints (the built-in guard last)."""

    results: tuple[ConstraintResult, ...]

    @property
    def passed(self) -> bool:
        """Every constraint passed (unverifiable ones count as not passed)."""
        return all(r.verdict is Verdict.PASS for r in self.results)

    @property
    def failed(self) -> bool:
        """At least one constraint failed."""
        return any(r.verdict is Verdict.FAIL for r in self.results)

    @property
    def unverifiable(self) -> tuple[ConstraintResult, ...]:
        return tuple(r for r in self.results if r.verdict is Verdict.UNVERIFIABLE)

    @property
    def fraction_passed(self) -> float:
        """Passed constraints / all constraints (1.0 when there are none)."""
        if not self.results:
            return 1.0
        return sum(r.passed for r in self.results) / len(self.results)

    @property
    def checked(self) -> tuple[ConstraintResult, ...]:
        """The constraints that got a pass or fail verdict."""
        return tuple(r for r in self.results if r.verdict is not Verdict.UNVERIFIABLE)

    @property
    def fraction_passed_checked(self) -> float:
        """Passed / checked constraints, unverifiable ones left out (1.0 when none was checked)."""
        checked = self.checked
        return sum(r.passed for r in checked) / len(checked) if checked else 1.0

    def to_dict(self) -> dict:
        return {
            "passed": self.passed,
            "failed": self.failed,
            "fraction_passed": self.fraction_passed,
            "results": [
                {"type": r.type, "verdict": r.verdict.value, "index": r.index, "detail": r.detail}
                for r in self.results
            ],
        }


@dataclass(frozen=True)
class GroupCheck:
    """The checks of one GRPO group (the responses to one prompt), in response order."""

    responses: tuple[ResponseCheck, ...]

    @property
    def passed(self) -> tuple[bool, ...]:
        """Per response: every constraint passed."""
        return tuple(r.passed for r in self.responses)

    @property
    def failed(self) -> tuple[bool, ...]:
        """Per response: some constraint failed."""
        return tuple(r.failed for r in self.responses)

    @property
    def fraction_passed(self) -> float:
        """Share of the group's responses that passed every constraint (1.0 for an empty group)."""
        if not self.responses:
            return 1.0
        return sum(self.passed) / len(self.responses)

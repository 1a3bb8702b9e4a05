"""The mutation-testing report: counts, score, and which survivors are not documented."""

from __future__ import annotations

import runpy
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
mutation = runpy.run_path(str(REPO / "tests" / "mutation.py"))


def test_summary_counts_outcomes_and_flags_undocumented_survivors():
    outcomes = {
        "a__1": "killed",
        "a__2": "survived",
        "a__3": "survived",
        "b__1": "timeout",
        "b__2": "no tests",
        "c__1": "killed",
        "d__1": "not checked",  # outside the pattern of this run
    }
    documented = {"a__2": "equivalent", "c__1": "was equivalent", "d__1": "e", "gone__1": "e"}
    report = mutation["summary"](outcomes, documented)
    assert report["mutants"] == 7 and report["survived"] == 2
    assert report["outcomes"] == {
        "killed": 2,
        "survived": 2,
        "timeout": 1,
        "no tests": 1,
        "not checked": 1,
    }
    assert report["score"] == round(3 / 5, 4)  # killed + timeout over the mutants that have tests
    assert report["score_counting_documented_equivalents_as_killed"] == round(4 / 5, 4)
    assert report["undocumented_survivors"] == ["a__3"]
    # listed, but a test kills it now, or the mutant no longer exists; not the unchecked one
    assert report["stale_equivalents"] == ["c__1", "gone__1"]


def test_the_equivalents_file_parses():
    documented = mutation["documented"]()
    assert all(reason for reason in documented.values())
    names = [
        line.partition("#")[0].strip()
        for line in mutation["EQUIVALENTS"].read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert len(names) == len(set(names)) == len(documented)  # one reason per mutant

"""Mutation testing of the training path: does each small break of the code fail a test?

    python tests/mutation.py                 # every mutant (hours on 2 cores: the learner's
                                             # tests run real DeepSpeed)
    python tests/mutation.py --report        # only read the results of the last run
    python tests/mutation.py "rlmr.core.rewards*"   # the mutants of one module

mutmut (a dev dependency; settings in pyproject.toml's [tool.mutmut]) rewrites
`rlmr/core/algo.py`, `rlmr/core/rewards.py`, `rlmr/core/shaping.py`,
`rlmr/training/learner.py`, `rlmr/training/logprobs.py` and
`rlmr/training/driver.py` one small change at a time (an operator, a constant,
a dropped argument) and runs the unit tests that reach the changed function
against each change, in `mutants/`. A mutant that
no test fails *survives*. Survivors that cannot change behaviour (equivalent
mutants) are listed with the reason in `tests/mutation_equivalents.txt`; every
other survivor is a missing test.

Hypothesis property tests draw at most `RLMR_PROPERTY_EXAMPLES` (default here:
150) examples per mutant. Prints one JSON object: counts per outcome, the
mutation score (killed / mutants with tests), and the undocumented survivors.
Exits 1 when there is an undocumented survivor.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EQUIVALENTS = REPO / "tests" / "mutation_equivalents.txt"


def documented() -> dict[str, str]:
    """`mutant name -> reason` from the equivalents file (`name  # reason`, one per line)."""
    out = {}
    for line in EQUIVALENTS.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, reason = line.partition("#")
            out[name.strip()] = reason.strip()
    return out


def results() -> dict[str, str]:
    """`mutant name -> outcome` of the last run (killed, survived, timeout, no tests, ...)."""
    text = subprocess.run(
        [sys.executable, "-m", "mutmut", "results", "--all", "true"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(re.findall(r"^\s+(\S+): (.+)$", text, re.M))


def summary(outcomes: dict[str, str], equivalent: dict[str, str]) -> dict:
    counts: dict[str, int] = {}
    for outcome in outcomes.values():
        counts[outcome] = counts.get(outcome, 0) + 1
    survivors = sorted(n for n, o in outcomes.items() if o == "survived")
    tested = sum(c for o, c in counts.items() if o not in ("no tests", "skipped", "not checked"))
    killed = counts.get("killed", 0) + counts.get("timeout", 0)
    return {
        "mutants": len(outcomes),
        "outcomes": counts,
        "score": round(killed / tested, 4) if tested else None,
        "score_counting_documented_equivalents_as_killed": (
            round((killed + sum(n in equivalent for n in survivors)) / tested, 4)
            if tested
            else None
        ),
        "survived": len(survivors),
        "documented_equivalent": sorted(n for n in survivors if n in equivalent),
        "undocumented_survivors": [n for n in survivors if n not in equivalent],
        # documented, but killed now or gone from the code (not the ones this run left out)
        "stale_equivalents": sorted(
            n for n in equivalent if outcomes.get(n) not in ("survived", "not checked")
        ),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mutants", nargs="*", help="mutant name patterns (default: all)")
    parser.add_argument("--report", action="store_true", help="do not run; read the last results")
    parser.add_argument("--max-children", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    if not args.report:
        env = dict(os.environ)
        env.setdefault("RLMR_PROPERTY_EXAMPLES", "150")
        env.setdefault("TORCH_EXTENSIONS_DIR", str(REPO / ".cache" / "torch_extensions"))
        cmd = [sys.executable, "-m", "mutmut", "run", "--max-children", str(args.max_children)]
        subprocess.run(cmd + list(args.mutants), cwd=REPO, env=env, check=True)
    report = summary(results(), documented())
    print(json.dumps(report, indent=1))
    return 1 if report["undocumented_survivors"] else 0


if __name__ == "__main__":
    sys.exit(main())

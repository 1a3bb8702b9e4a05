"""How many examples a Hypothesis property test draws.

The suite draws the full count. `tests/mutation.py` runs each mutant against
the tests that reach it, hundreds of times, and caps the count with
`RLMR_PROPERTY_EXAMPLES` so a run takes minutes, not hours; Hypothesis still
tries its edge cases (ties, zeros, extremes) first.
"""

from __future__ import annotations

import os


def examples(n: int) -> int:
    cap = os.environ.get("RLMR_PROPERTY_EXAMPLES")
    return min(n, int(cap)) if cap else n

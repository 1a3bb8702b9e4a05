"""The constraint verifier: pass/fail per constraint, exact against IFEval's reference, offline and
fast.

    from rlmr.verify import verify_batch, parse_constraints
    checks = verify_batch([(response, [
        {"type": "creative:word_count", "min": 200, "max": 400},
        {"type": "keywords:forbidden_words", "forbidden_words": ["suddenly"]}])])
    checks[0].passed, [r.verdict for r in checks[0].results]

Modules: `constraints` (registry, validation), `ifeval` (the 25 IFEval
instruction types, their kwargs, strict and loose verdicts) with their checks in
`ifeval_rules`, `ifbench` (the 58 IFBench instruction types; checks in
`ifbench_rules` and `ifbench_rules_format`, measurements and local data in
`ifbench_text`), `creative` (writing-prompt constraints), `guard` (judge-directed
text), `soft` (yes/no checks through a TextEngine), `text` (per-response
measurements, computed once; languages identified for a whole batch at once), `langid`
(langdetect, exact and faster, many texts side by side), `treebank` (NLTK's word
tokenizer, exact and faster), `api` (batch checking), `results` (returned records),
`ifeval_eval` (IFEval evaluation files and report), `ifbench_eval` (the same for
IFBench). The command line is `rlmr.cli.verify`.
"""

# The modules that register the built-in constraint types (IFEval, IFBench, creative, guard, soft).
from rlmr.verify import creative, guard, ifbench, ifeval, soft  # noqa: F401
from rlmr.verify.api import VerifyGroup, verify_batch, verify_groups, verify_response
from rlmr.verify.constraints import (
    Constraint,
    ConstraintError,
    parse_constraint,
    parse_constraints,
    parse_rows,
    registry,
)
from rlmr.verify.results import ConstraintResult, GroupCheck, ResponseCheck, Verdict
from rlmr.verify.soft import SoftConstraintChecker

__all__ = [
    "Constraint",
    "ConstraintError",
    "ConstraintResult",
    "GroupCheck",
    "ResponseCheck",
    "SoftConstraintChecker",
    "Verdict",
    "VerifyGroup",
    "parse_constraint",
    "parse_constraints",
    "parse_rows",
    "registry",
    "verify_batch",
    "verify_groups",
    "verify_response",
]

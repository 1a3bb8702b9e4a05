"""The verifier's process never loads PyTorch: its records, its config and its checks are plain
Python, and torch would cost each verifier replica about 190 MiB for nothing (a third of its
memory in `bench/vs_trl.py`'s per-process figures)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO

PROBE = r"""
import sys
sys.path.insert(0, sys.argv[1])
from actors.verifier import VerifierWorker
from rlmr.config import VerifierConfig
from rlmr.core.records import Group, PromptRow, Response

worker = VerifierWorker.__ray_metadata__.modified_class(VerifierConfig())  # what the actor runs
row = PromptRow("p", "Two words.", ({"type": "length_constraints:number_words",
                                     "relation": "less than", "num_words": 3},))
group = Group(row, "Two words.", (), (Response("Two words", (), (), "stop"),
                                      Response("Far too many words here", (), (), "stop")))
(verdicts,) = worker.check([group])
print(verdicts.passed, sorted(m for m in sys.modules if m == "torch" or m.startswith("torch.")))
"""


def test_the_verifier_checks_groups_without_loading_torch():
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(REPO)], capture_output=True, text=True, check=True
    )
    assert out.stdout.split("\n")[-2] == "(True, False) []"

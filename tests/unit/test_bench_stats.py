"""The statistics the benchmark scripts report."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "heldout_eval", Path(__file__).resolve().parents[2] / "bench" / "heldout_eval.py"
)
heldout_eval = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(heldout_eval)


def test_sign_test_matches_the_exact_binomial():
    assert heldout_eval.sign_test_p(0, 0) == 1.0
    assert heldout_eval.sign_test_p(10, 0) == pytest.approx(2 / 1024)
    assert heldout_eval.sign_test_p(3, 7) == heldout_eval.sign_test_p(7, 3)
    # 6 of 8: P(X <= 2) = (1 + 8 + 28) / 256, doubled.
    assert heldout_eval.sign_test_p(6, 2) == pytest.approx(2 * 37 / 256)
    assert heldout_eval.sign_test_p(5, 5) == 1.0

"""bench/learner_memory.py's sampler: readings are filed under the phase a wrapped call runs in,
and the phase after the call is the one named, also when the call raises."""

from __future__ import annotations

import time
import types

import pytest

from tests.conftest import bench_module


@pytest.fixture(scope="module")
def bench():
    return bench_module("learner_memory")


def test_a_wrapped_call_files_its_peak_under_its_phase(bench):
    peaks = bench.PhasePeaks(every=0.001)
    seen = []

    def grow():
        seen.append(peaks.phase)
        block = b"x" * (64 * 2**20)  # written: resident while the call runs
        time.sleep(0.2)
        return len(block)

    def fail():
        raise RuntimeError("boom")

    target = types.SimpleNamespace(grow=grow, fail=fail)
    peaks.wrap(target, "grow", "backward", "between")
    peaks.wrap(target, "fail", "step", "after")
    peaks.phase = "idle"
    time.sleep(0.05)
    assert target.grow() == 64 * 2**20 and seen == ["backward"] and peaks.phase == "between"
    time.sleep(0.05)
    assert peaks.peaks["backward"] >= peaks.peaks["idle"] + 60
    with pytest.raises(RuntimeError):
        target.fail()
    assert peaks.phase == "after"

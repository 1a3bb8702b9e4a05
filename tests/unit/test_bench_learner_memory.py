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
    # A controlled reading, not this process's RSS: in a long pytest process the allocator may
    # hand a new block pages it already holds, and RSS would not move.
    level = [100]
    peaks = bench.PhasePeaks(every=0.001, reading=lambda: level[0])
    seen = []

    def grow():
        seen.append(peaks.phase)
        level[0] = 1000
        time.sleep(0.2)
        level[0] = 100
        return "grown"

    def fail():
        raise RuntimeError("boom")

    target = types.SimpleNamespace(grow=grow, fail=fail)
    peaks.wrap(target, "grow", "backward", "between")
    peaks.wrap(target, "fail", "step", "after")
    peaks.phase = "idle"
    time.sleep(0.05)
    assert target.grow() == "grown" and seen == ["backward"] and peaks.phase == "between"
    time.sleep(0.05)
    assert peaks.peaks["backward"] == 1000 and peaks.peaks["idle"] == 100
    with pytest.raises(RuntimeError):
        target.fail()
    assert peaks.phase == "after"


def test_the_default_reading_is_this_process_s_rss_in_mib(bench):
    import psutil

    peaks = bench.PhasePeaks(every=0.001)
    rss = psutil.Process().memory_info().rss >> 20
    assert abs(peaks.reading() - rss) < 64

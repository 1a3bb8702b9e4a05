"""`actors.process.release_freed_memory`: a freed model-sized block that glibc kept on the heap
leaves the process's resident memory when an actor's model call ends."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO

PROBE = r"""
import sys
import numpy as np
sys.path.insert(0, sys.argv[2])
from actors.process import release_freed_memory, setup_process

setup_process("cpu")  # what every CPU model actor runs first

def rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20

# Free one 16 MB block (glibc then raises its mmap threshold past 16 MB: it does so for blocks up
# to 32 MB), then allocate, touch and free another: it came from the heap and stays resident
# unless the heap's free pages are handed back.
a = np.ones(2 << 20)
del a
b = np.ones(2 << 20)
before = rss_mib()
del b
if sys.argv[1] == "release":
    assert release_freed_memory()
print(before - rss_mib())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_a_freed_model_sized_block_leaves_resident_memory_when_released():
    def released(mode: str) -> float:
        out = subprocess.run(
            [sys.executable, "-c", PROBE, mode, str(REPO)],
            capture_output=True,
            text=True,
            check=True,
        )
        return float(out.stdout.strip())

    assert released("release") > 14  # MiB given back
    assert released("keep") < 2  # glibc keeps it on the heap for the next allocation


def test_a_model_call_releases_when_it_returns_and_when_it_raises(monkeypatch):
    import actors.process as process

    calls = []
    monkeypatch.setattr(process, "release_freed_memory", lambda: calls.append(1) or True)

    class Worker:
        @process.releases_memory
        def sample(self, x, scale=2):
            if x is None:
                raise ValueError("no rows")
            return x * scale

    assert Worker().sample(3, scale=5) == 15 and calls == [1]
    with pytest.raises(ValueError, match="no rows"):
        Worker().sample(None)
    assert calls == [1, 1]
    assert Worker.sample.__name__ == "sample"


FAULTS = r"""
import ctypes, resource, sys
import numpy as np

ctypes.CDLL("libc.so.6").prctl(41, 1, 0, 0, 0)  # PR_SET_THP_DISABLE: count 4 KiB pages

# A learner's update: blocks of 64 MB (a micro-batch's logits) allocated, touched and freed over
# and over. Page faults of the last 4 rounds, after a first that maps the heap.
for i in range(5):
    if i == 1:
        start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    a = np.ones(8 << 20)
    del a
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_large_blocks_stay_on_the_heap_for_the_next_allocation_with_the_learner_s_setting():
    import os

    from actors.process import LARGE_BLOCKS_ON_HEAP

    def faults(extra: dict) -> int:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_"))}
        out = subprocess.run(
            [sys.executable, "-c", FAULTS], env={**env, **extra}, capture_output=True, text=True
        )
        return int(out.stdout.strip())

    pages = (64 << 20) // 4096
    assert faults({}) > 3 * pages  # a fresh mapping every time, faulted in page by page
    assert faults(LARGE_BLOCKS_ON_HEAP) < pages // 10  # the same block, already resident


def test_only_a_cpu_learner_that_is_not_colocated_gets_the_setting():
    from actors.process import LARGE_BLOCKS_ON_HEAP, cpu_learner_env
    from rlmr.config import load_config

    cfg = load_config(REPO / "configs" / "smollm2-cpu.yaml")
    assert cpu_learner_env(cfg, environ={}) == LARGE_BLOCKS_ON_HEAP
    colocated = load_config(REPO / "configs" / "smollm2-cpu.yaml", ["cluster.colocate=true"])
    assert cpu_learner_env(colocated, environ={}) == {}
    gpu = load_config(REPO / "configs" / "qwen2.5-7b-rlmr.yaml")
    assert gpu.cluster.learner.gpus > 0 and cpu_learner_env(gpu, environ={}) == {}
    # The run's own allocator settings win.
    assert cpu_learner_env(cfg, environ={"MALLOC_MMAP_THRESHOLD_": "1"}) == {}
    assert cpu_learner_env(cfg, environ={"MALLOC_TRIM_THRESHOLD_": "1"}) == {}
    assert cpu_learner_env(cfg, environ={"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}) == {}

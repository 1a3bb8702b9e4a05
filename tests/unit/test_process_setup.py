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

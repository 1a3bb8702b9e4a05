"""`actors.process.return_freed_memory`: freed model-sized blocks leave the process's resident
memory (glibc), where by default the second one would stay on the heap."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO

PROBE = r"""
import sys
import numpy as np
sys.path.insert(0, sys.argv[2])
if sys.argv[1] == "on":
    from actors.process import return_freed_memory
    assert return_freed_memory()
if sys.argv[1] == "setup":  # what every CPU model actor runs first
    from actors.process import setup_process
    setup_process("cpu")

def rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20

# Free one 16 MB block (glibc then raises its mmap threshold past 16 MB by default: it does so for
# blocks up to 32 MB), then allocate, touch and free another: by default it came from the heap and
# stays resident.
a = np.ones(2 << 20)
del a
b = np.ones(2 << 20)
before = rss_mib()
del b
print(before - rss_mib())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_a_freed_model_sized_block_leaves_resident_memory():
    def released(mode: str) -> float:
        out = subprocess.run(
            [sys.executable, "-c", PROBE, mode, str(REPO)],
            capture_output=True,
            text=True,
            check=True,
        )
        return float(out.stdout.strip())

    assert released("on") > 14  # MiB given back at the free
    assert released("setup") > 14
    assert released("off") < 2  # glibc's default keeps it

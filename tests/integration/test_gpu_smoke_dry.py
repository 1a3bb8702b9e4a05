"""`bench/gpu_smoke.py --dry-run`: the GPU smoke check's every step runs on CPU, so the script is
known to work on the day a GPU is lent (only the device, dtype and backend change there)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_gpu_smoke_runs_every_check_on_cpu(repo, tmp_path):
    env = dict(os.environ, RLMR_CACHE=str(tmp_path / "cache"))
    env.setdefault("TORCH_EXTENSIONS_DIR", str(repo / ".cache" / "torch_extensions"))
    done = subprocess.run(
        [sys.executable, str(repo / "bench" / "gpu_smoke.py"), "--dry-run"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    report = json.loads(done.stdout)
    assert done.returncode == 0, json.dumps(report["checks"], indent=1) + done.stderr[-3000:]
    assert report["mode"] == "cpu-dry-run" and report["ok"]
    checks = report["checks"]
    assert set(checks) == {
        "generate",
        "learner_zero0",
        "learner_zero3",
        "learner_zero2_offload",
        "weight_sync",
    }
    assert checks["generate"]["new_tokens"] > 0
    for name in ("learner_zero0", "learner_zero3", "learner_zero2_offload"):
        assert checks[name]["grad_norm"] > 0
        changed, total = map(int, checks[name]["tensors_changed"].split("/"))
        assert changed == total
    assert checks["weight_sync"]["max_abs_logprob_diff"] < 1e-4

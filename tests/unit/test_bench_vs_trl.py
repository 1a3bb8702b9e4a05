"""`bench/vs_trl.py`'s rlmr round: overrides become `--set` arguments of `rlmr train`, and an
`env:NAME=VALUE` override becomes an environment variable of that run instead (how an allocator
setting is measured side by side)."""

from __future__ import annotations

import importlib.util
import json
import types

from tests.conftest import REPO


def _vs_trl():
    spec = importlib.util.spec_from_file_location("vs_trl", REPO / "bench" / "vs_trl.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_env_overrides_set_the_run_s_environment_and_the_rest_are_config_keys(tmp_path):
    vs_trl = _vs_trl()
    seen = {}

    def run_measured(cmd, env, log):
        seen.update(cmd=cmd, env=env)
        metrics = tmp_path / "rlmr-heap-0" / "bench" / "metrics.jsonl"
        metrics.parent.mkdir(parents=True)
        metrics.write_text(json.dumps({"step": 1, "time/step_s": 1.0}) + "\n")
        return 1.0, {}

    vs_trl.run_measured = run_measured
    args = types.SimpleNamespace(n=4, prompts=4, tokens=64, micro=4, steps=2, set=["a.b=1"])
    extra = ["env:MALLOC_MMAP_THRESHOLD_=1073741824", "model.dtype=bfloat16"]
    out = vs_trl.rlmr_round(args, tmp_path, tmp_path / "p.jsonl", 0, "heap", extra)
    assert seen["env"]["MALLOC_MMAP_THRESHOLD_"] == "1073741824"
    sets = [seen["cmd"][i + 1] for i, a in enumerate(seen["cmd"]) if a == "--set"]
    assert "a.b=1" in sets and sets[-1] == "model.dtype=bfloat16"
    assert not any(s.startswith("env:") or "MALLOC" in s for s in sets)
    assert out["steps"] == [{"step": 1, "time/step_s": 1.0}]


def test_cpu_description_names_bf16_arithmetic_or_its_absence():
    text = _vs_trl().cpu_description()
    assert "bf16" in text

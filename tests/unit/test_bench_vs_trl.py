"""`bench/vs_trl.py`'s rlmr round: overrides become `--set` arguments of `rlmr train`, and an
`env:NAME=VALUE` override becomes an environment variable of that run instead (how an allocator
setting is measured side by side); a TRL variant's `GRPOConfig` fields reach TRL's script and its
figures and ratios come out under its own name."""

from __future__ import annotations

import json
import types

from tests.conftest import REPO, bench_module


def _vs_trl():
    return bench_module("vs_trl")


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


def test_trl_variants_reach_trl_s_config_and_get_their_own_figures_and_ratios(tmp_path, capsys):
    vs_trl = _vs_trl()
    specs = []

    def run_measured(cmd, env, log):
        spec = json.loads(cmd[2])
        specs.append(spec)
        print("[WARNING] a library's log line on stdout")  # kept out of the JSON
        assert cmd[1] == str(REPO / "bench" / "trl_grpo.py")
        step = 20.0 if spec["config"].get("gradient_checkpointing") is False else 25.0
        memory = {"rss_gib": 1.0, "pss_gib": 1.0, "by_process_mib": {}, "sampler_cpu_s": 0.1}
        log.write_text("BENCH_JSON " + json.dumps({"step_s": [99.0, step], "log": []}) + "\n")
        return 1.0, memory

    vs_trl.run_measured = run_measured
    vs_trl.model_dir = lambda: tmp_path
    vs_trl.ensure_trl_venv = lambda: tmp_path / "python"
    argv = ["--only", "trl", "--rounds", "1", "--work", str(tmp_path), "--trl-bf16"]
    argv += ["--trl-variant", "keep=gradient_checkpointing=false", "--trl-variant", "keep=beta=0.1"]
    assert vs_trl.main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert [s["config"] for s in specs] == [
        {},
        {"gradient_checkpointing": False, "beta": 0.1},
        {"bf16": True},
    ]
    assert result["trl"]["step_s"] == 25.0 and result["trl_keep"]["step_s"] == 20.0
    assert result["trl_keep"]["config"] == {"gradient_checkpointing": False, "beta": 0.1}
    assert result["trl_bf16"]["config"] == {"bf16": True}


def test_a_trl_variant_without_a_value_is_refused(tmp_path):
    import pytest

    with pytest.raises(SystemExit):
        _vs_trl().main(["--only", "trl", "--trl-variant", "keep=gradient_checkpointing"])


def test_round_ratios_pair_each_rlmr_round_with_the_trl_round_beside_it():
    """A slow spell of the machine that falls on one round weighs on both sides of that round: the
    ratio is taken round by round (first steps left out), then the median."""

    def rlmr(*steps):
        return {"steps": [{"step": i + 1, "time/step_s": s} for i, s in enumerate(steps)]}

    rounds = _vs_trl().round_ratios(
        [rlmr(99.0, 10.0, 11.0, 12.0), rlmr(99.0, 20.0, 22.0, 24.0), rlmr(99.0, 9.0)],
        [{"step_s": [1.0, 25.0, 25.0]}, {"step_s": [1.0, 40.0, 50.0]}, {"step_s": [1.0, 30.0]}],
    )
    assert rounds == {"by_round": [0.44, 0.489, 0.3], "median": 0.44}

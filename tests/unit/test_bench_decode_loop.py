"""bench/decode_loop.py end to end on the main job's model, at a few tokens: both loops run, the
figures it prints are there and the own loop's log-probs are a full forward's in fp32."""

from __future__ import annotations

import json

from tests.conftest import bench_module


def test_the_bench_prints_both_loops_figures(capsys):
    bench = bench_module("decode_loop")
    argv = ["--prompts", "1", "--n", "2", "--tokens", "4", "--rounds", "1", "--dtype", "float32"]
    assert bench.main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    for name in ("own_loop", "generate"):
        calls = result[name]["calls"]
        assert len(calls) == 1 and 1 <= calls[0]["steps"] <= 4 and calls[0]["s"] > 0
        assert result[name]["mean_abs_logprob_gap_to_full_forward"] < 1e-3
    assert result["ratio_per_call"] > 0 and result["work"]["dtype"] == "float32"

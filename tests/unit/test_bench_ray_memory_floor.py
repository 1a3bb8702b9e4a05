"""bench/ray_memory_floor.py's accounting: which processes are the floor, and the comparison with
a vs_trl result."""

from __future__ import annotations

import json

import pytest

from tests.conftest import bench_module


@pytest.fixture(scope="module")
def bench():
    return bench_module("ray_memory_floor")


def test_the_floor_is_set_beside_the_colocated_tree_and_trl(bench, tmp_path):
    step = {
        "variants": {
            "colocated": {
                "peak_pss_gib": 4.5,
                "pss_by_process_mib": {
                    "ray::ColocatedWorker [7]": 3600,
                    "python rlmr.cli [3]": 350,
                    "ray::VerifierWorker [8]": 160,
                },
            }
        },
        "trl": {"peak_pss_gib": 4.0},
    }
    path = tmp_path / "step.json"
    path.write_text(json.dumps(step))
    out = bench.beside_step({"pss_mib": {"floor": 850}}, str(path))
    assert out == {
        "result": str(path),
        "colocated_tree_mib": 4608,
        "colocated_model_process_mib": 3600,
        "colocated_tree_besides_model_mib": 1008,
        "trl_mib": 4096,
        "floor_mib": 850,
        "model_process_below_trl_mib": 496,
    }


def test_the_tree_is_read_by_process_with_this_process_named_driver(bench):
    by_process = bench.tree_pss()
    drivers = [k for k in by_process if k.startswith("driver [")]
    assert len(drivers) == 1 and by_process[drivers[0]] > 0

"""`bench/plot_steps.py`: the README's plot of where a step's time goes, from vs_trl.py results."""

from __future__ import annotations

import json
import runpy

import pytest

from tests.conftest import REPO  # noqa: F401  (the repository root on sys.path)


def _result(path, step, phases, trl=None):
    data = {
        "date": "2026-12-01 10:00",
        "work": {"prompts": 4, "samples_per_prompt": 4, "max_new_tokens": 64},
        "rlmr": {"step_s": step, "phases_s": {**phases, "step": step}},
    }
    if trl is not None:
        data["trl"] = {"step_s": trl}
    path.write_text(json.dumps(data))
    return path


def test_each_result_is_a_bar_of_its_phases_with_trl_beside_it(tmp_path, capsys):
    main = runpy.run_path(str(REPO / "bench" / "plot_steps.py"))["main"]
    phases = {"rollout": 10.0, "reference": 4.0, "update": 20.0, "sync": 5.0, "reward": 0.5}
    a = _result(tmp_path / "a.json", 41.0, phases, trl=50.0)
    b = _result(tmp_path / "b.json", 30.0, {**phases, "update": 12.0, "sync": 0.5})
    out = tmp_path / "plot" / "steps.png"
    main([f"before={a}", f"after={b}", "--out", str(out)])
    shown = json.loads(capsys.readouterr().out)
    assert shown["before"]["other_s"] == pytest.approx(1.5)  # what no phase accounts for
    assert shown["before"]["trl_step_s"] == 50.0 and shown["after"]["trl_step_s"] is None
    assert shown["after"]["phases_s"]["update"] == 12.0 and shown["after"]["shape"] == "4x4x64"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000

    # A result's variant (vs_trl.py --variant NAME=...): LABEL=PATH#NAME, TRL from the same run.
    data = json.loads(a.read_text())
    data["variants"] = {"colocated": {"step_s": 35.0, "phases_s": {**phases, "sync": 0.0}}}
    a.write_text(json.dumps(data))
    main([f"both={a}", f"colocated={a}#colocated", "--out", str(out)])
    shown = json.loads(capsys.readouterr().out)
    assert shown["both"]["step_s"] == 41.0 and shown["colocated"]["step_s"] == 35.0
    assert shown["colocated"]["phases_s"]["sync"] == 0.0
    assert shown["colocated"]["trl_step_s"] == 50.0
    with pytest.raises(SystemExit, match="not a vs_trl.py result"):
        main([f"x={a}#nosuch", "--out", str(out)])


def test_bad_arguments_name_what_is_wrong(tmp_path):
    main = runpy.run_path(str(REPO / "bench" / "plot_steps.py"))["main"]
    with pytest.raises(SystemExit, match="expected LABEL=PATH"):
        main(["nolabel", "--out", str(tmp_path / "x.png")])
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"rlmr": {"step_s": 1.0}}))
    with pytest.raises(SystemExit, match=rf"{bad}: not a vs_trl.py result"):
        main([f"x={bad}", "--out", str(tmp_path / "x.png")])

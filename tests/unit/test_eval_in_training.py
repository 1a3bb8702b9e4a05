"""`trainer.eval`: a training run evaluates with `rlmr eval`'s own suite code, on its rollout
engines, at every evaluation; figures in metrics.jsonl equal the suite's summary, files per step."""

from __future__ import annotations

import json

import pytest

from rlmr.core.records import PromptRow
from rlmr.evals.suites import with_suites
from rlmr.training.driver import run_training
from rlmr.training.run_dir import RunDir
from tests.fake_services import FakeServices, fake_run_config

ROWS = [PromptRow(id=f"p{i}", prompt=f"Write piece {i}.") for i in range(8)]
HELD_OUT = [PromptRow(id=f"h{i}", prompt=f"Held out {i}.") for i in range(3)]


def _ifeval(tmp_path):
    path = tmp_path / "ifeval.jsonl"
    rows = [
        {"key": 1, "prompt": "No commas.", "instruction_id_list": ["punctuation:no_comma"]},
        {"key": 2, "prompt": "Lower.", "instruction_id_list": ["change_case:english_lowercase"]},
    ]
    path.write_text("".join(json.dumps({**r, "kwargs": [{}]}) + "\n" for r in rows))
    return path


def _train(tmp_path, monkeypatch, services, eval_rows, *overrides):
    """A FakeServices run whose evaluations include the IFEval suite, on `_ifeval`'s two rows."""
    from rlmr.evals import suites

    data = _ifeval(tmp_path)
    monkeypatch.setattr(suites, "ifeval_data_file", lambda: data)
    cfg = fake_run_config(tmp_path, "trainer.eval.suites=[ifeval]", *overrides)
    run = RunDir(cfg)
    return run, run_training(cfg, services, run, ROWS, eval_rows, eval_fn=with_suites(run.path))


def test_the_suites_run_at_each_evaluation_on_the_run_engines(tmp_path, monkeypatch):
    services = FakeServices()
    run, logged = _train(
        tmp_path,
        monkeypatch,
        services,
        HELD_OUT,
        "trainer.steps=2",
        "trainer.eval_every=2",
        "trainer.eval.max_new_tokens=8",
    )
    assert [r["step"] for r in logged] == [0, 1, 2]
    for row in (logged[0], logged[2]):
        step = row["step"]
        summary = json.loads(
            (run.path / "evals" / f"step_{step:06d}" / "ifeval" / "summary.json").read_text()
        )
        assert summary["model"] == f"step {step}" and summary["checked"] == 2
        settings = json.loads(
            (run.path / "evals" / f"step_{step:06d}" / "ifeval" / "settings.json").read_text()
        )
        assert settings["sampling"]["max_new_tokens"] == 8  # trainer.eval.max_new_tokens
        for key in ("prompt_strict", "instruction_strict", "prompt_loose", "instruction_loose"):
            assert row[f"eval/ifeval/{key}"] == summary[key]["value"]
        assert "eval/pass_rate" in row  # the held-out evaluation still runs first
    assert not any(k.startswith("eval/") for k in logged[1])
    # the IFEval prompts went through the run's own sampler, greedy, one sample each
    assert services.sampled_prompt_ids.count(["1", "2"]) == 2
    on_disk = [json.loads(x) for x in (run.path / "metrics.jsonl").read_text().splitlines()]
    assert on_disk[-1]["eval/ifeval/prompt_strict"] == logged[2]["eval/ifeval/prompt_strict"]


def test_suites_alone_are_something_to_evaluate(tmp_path, monkeypatch):
    run, logged = _train(
        tmp_path,
        monkeypatch,
        FakeServices(),
        [],
        "data.eval=null",
        "trainer.steps=1",
        "trainer.eval.limit=1",
    )
    assert [r["step"] for r in logged] == [0, 1]
    assert all("eval/ifeval/prompt_strict" in r and "eval/pass_rate" not in r for r in logged)
    summary = json.loads(
        (run.path / "evals" / "step_000001" / "ifeval" / "summary.json").read_text()
    )
    assert summary["prompts"] == 1  # trainer.eval.limit


def test_the_config_refuses_suites_for_a_judge_and_an_eval_with_nothing_to_evaluate(tmp_path):
    from rlmr.config import ConfigError

    with pytest.raises(ConfigError, match="trainer.eval_every: is set but neither data.eval"):
        fake_run_config(tmp_path, "data.eval=null", "trainer.eval_every=2")
    with pytest.raises(
        ConfigError, match=r"trainer.eval.suites.0: Input should be 'ifeval' or 'ifbench'"
    ):
        fake_run_config(tmp_path, "trainer.eval.suites=[arena]")
    with pytest.raises(ConfigError, match="trainer.eval.suites: benchmarks evaluate a policy"):
        fake_run_config(tmp_path, "task=judge", "trainer.eval.suites=[ifeval]")
    assert fake_run_config(tmp_path, "trainer.eval.limit=null").trainer.eval.limit is None

"""NaN and inf at run time: a step whose writing scores, log-probs or gradients are not finite is
skipped (no update, no weight sync) and counted; several in a row stop the run with their samples
saved; responses cut at the length limit and empty ones are counted, and the optional penalty for
cut ones is taken before mixing."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from rlmr.core.algo import group_advantages
from rlmr.core.records import RewardSignals, ScoredGroup, WritingScores
from rlmr.core.rewards import mix_rewards
from rlmr.training.driver import TrainingHalted, run_training
from rlmr.training.run_dir import RunDir
from tests.fake_services import FakeServices, fake_run_config
from tests.unit.test_driver import ROWS

NAN = float("nan")


def _cfg(tmp_path, *overrides):
    return fake_run_config(
        tmp_path, "trainer.steps=4", "trainer.eval_every=0", "checkpoint.every=1", *overrides
    )


class Faulty(FakeServices):
    """Fake services that spoil one thing on the steps in `bad` (1-based)."""

    def __init__(self, what: str, bad: set[int]):
        super().__init__()
        self.what, self.bad, self.step = what, bad, 0

    def sample(self, rows, params):
        self.step += 1
        groups = super().sample(rows, params)
        if self.what == "rollout" and self.step in self.bad:
            g = groups[0]
            r = dataclasses.replace(g.responses[0], logprobs=(NAN,) * len(g.responses[0].logprobs))
            groups[0] = dataclasses.replace(g, responses=(r, *g.responses[1:]))
        return groups

    def score(self, groups, judge=True):
        out = super().score(groups, judge)
        if self.what == "writing" and self.step in self.bad:
            s = out[1]
            out[1] = ScoredGroup(s.group, s.verdicts, WritingScores((float("inf"), NAN, 0.2, 0.3)))
        return out

    def reference_logprobs(self, tokens):
        ref = super().reference_logprobs(tokens)
        if self.what == "reference" and self.step in self.bad:
            ref[2, -1] = NAN
        return ref

    def update_policy(self, batch):
        stats = super().update_policy(batch)
        if self.what == "gradients" and self.step in self.bad:
            stats["skipped_update_frac"] = 1.0
        return stats


def _lines(run, name):
    return [json.loads(x) for x in (run.path / name).read_text().splitlines()]


@pytest.mark.parametrize(
    "what, reason, updated",
    [
        ("writing", "writing scores", False),
        ("rollout", "rollout log-probs", False),
        ("reference", "reference log-probs", False),
        ("gradients", "gradients", True),  # the learner was called; it discarded its step
    ],
)
def test_a_non_finite_step_is_skipped_counted_and_the_run_goes_on(tmp_path, what, reason, updated):
    kl = ["algo.kl={beta: 0.1, in_loss: true}"] if what == "reference" else []
    cfg = _cfg(tmp_path, *kl)
    services = Faulty(what, {2})
    run = RunDir(cfg)
    rows = run_training(cfg, services, run, ROWS, ())
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert [r["skipped_step"] for r in rows] == [0.0, 1.0, 0.0, 0.0]
    assert rows[1]["skipped_for"] == reason
    assert "skipped_for" not in rows[0] and "skipped_for" not in rows[2]
    assert services.updates == (4 if updated else 3)
    assert services.syncs == (4 if updated else 3)  # no weight sync after a skipped step
    # The skipped step's samples are kept; JSON has no NaN: non-finite values are null.
    samples = [s for s in _lines(run, "samples.jsonl") if s["step"] == 2]
    assert len(samples) == cfg.logging.samples_per_step
    metrics = _lines(run, "metrics.jsonl")
    assert [m["step"] for m in metrics] == [1, 2, 3, 4]
    assert metrics[1]["skipped_step"] == 1.0
    assert ("reward_mean" in rows[1]) == updated  # a step left out mixes no reward


def test_the_writing_sample_rows_of_a_skipped_step_show_null_for_nan(tmp_path):
    cfg = _cfg(tmp_path, "trainer.steps=1", "logging.samples_per_step=8")
    run = RunDir(cfg)
    run_training(cfg, Faulty("writing", {1}), run, ROWS, ())
    samples = _lines(run, "samples.jsonl")
    assert [s["writing"] for s in samples[4:6]] == [None, None]  # inf and NaN
    assert [s["advantage"] for s in samples] == [0.0] * 8


def test_steps_skipped_in_a_row_stop_the_run_with_their_samples_saved(tmp_path):
    cfg = _cfg(tmp_path, "trainer.steps=6", "trainer.max_skipped_steps=2")
    services = Faulty("writing", {2, 4, 5, 6})
    run = RunDir(cfg)
    with pytest.raises(TrainingHalted) as err:
        run_training(cfg, services, run, ROWS, ())
    assert str(err.value) == (
        "steps 4-5: 2 steps in a row skipped for non-finite values (writing scores; "
        f"trainer.max_skipped_steps is 2); their metrics and samples are in {run.path}, the last "
        f"checkpoint is {run.path / 'checkpoints' / 'step_000004'}"
    )
    assert [m["step"] for m in _lines(run, "metrics.jsonl")] == [1, 2, 3, 4, 5]
    steps = [s["step"] for s in _lines(run, "samples.jsonl")]
    assert steps.count(5) == cfg.logging.samples_per_step  # the last skipped step's too
    assert services.updates == 2  # steps 1 and 3 only: never an update on a bad step


def test_a_run_whose_every_step_is_skipped_stops_at_the_limit(tmp_path):
    cfg = _cfg(tmp_path, "trainer.steps=10", "trainer.max_skipped_steps=3")
    with pytest.raises(
        TrainingHalted, match=r"^steps 1-3: 3 steps in a row .* checkpoint is .*step_000002$"
    ):
        run_training(cfg, Faulty("gradients", set(range(1, 11))), RunDir(cfg), ROWS, ())
    cfg = _cfg(
        tmp_path / "early", "trainer.steps=10", "trainer.max_skipped_steps=2", "checkpoint.every=5"
    )
    with pytest.raises(TrainingHalted, match=r"^steps 1-2: .* the last checkpoint is none$"):
        run_training(cfg, Faulty("gradients", {1, 2}), RunDir(cfg), ROWS, ())  # before any


class Cut(FakeServices):
    """Responses 1 and 3 of every group end at the length limit; response 0 of the first group is
    empty."""

    def sample(self, rows, params):
        groups = super().sample(rows, params)
        out = []
        for gi, g in enumerate(groups):
            rs = [
                dataclasses.replace(r, finish_reason="length" if i in (1, 3) else "stop")
                for i, r in enumerate(g.responses)
            ]
            if gi == 0:
                rs[0] = dataclasses.replace(rs[0], text="", token_ids=(), logprobs=())
            out.append(dataclasses.replace(g, responses=tuple(rs)))
        return out

    def score(self, groups, judge=True):
        self.last = super().score(groups, judge)
        return self.last


@pytest.mark.parametrize("penalty", [0.0, 0.25])
def test_cut_and_empty_responses_are_counted_and_the_cut_ones_penalised(tmp_path, penalty):
    cfg = _cfg(tmp_path, "trainer.steps=1", f"reward.truncated_penalty={penalty}")
    services = Cut()
    row = run_training(cfg, services, RunDir(cfg), ROWS, ())[0]
    assert row["truncated_frac"] == 0.5
    assert row["empty_frac"] == 1 / 8
    signals = RewardSignals.of(services.last)
    cut = torch.tensor([[0.0, 1.0, 0.0, 1.0]] * 2, dtype=torch.float64)
    rewards = mix_rewards(
        signals.writing - penalty * cut, signals.passed, passed_fraction=signals.passed_fraction
    )
    assert torch.equal(
        services.batches[0].advantages, group_advantages(rewards).reshape(-1).float()
    )
    assert row["reward_mean"] == pytest.approx(float(rewards.mean()))
    if penalty:
        plain = mix_rewards(
            signals.writing, signals.passed, passed_fraction=signals.passed_fraction
        )
        assert row["reward_mean"] < float(plain.mean())


def test_a_skipped_step_names_every_cause_and_keeps_its_pass_rate_and_time(tmp_path):
    class Both(Faulty):
        def score(self, groups, judge=True):
            self.what = "writing"
            out = super().score(groups, judge)
            self.what = "rollout"
            return out

    cfg = _cfg(tmp_path)
    services = Both("rollout", {2})
    rows = run_training(cfg, services, RunDir(cfg), ROWS, ())
    skipped = rows[1]
    assert skipped["skipped_for"] == "writing scores, rollout log-probs"
    assert skipped["pass_rate"] == 0.5  # the fakes pass the odd responses of each group
    assert skipped["time/step_s"] > 0 and skipped["time/step_s"] >= skipped["time/rollout_s"]

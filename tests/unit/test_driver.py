"""The driver's control flow over in-process fake services: rewards, advantages, refills,
checkpoints, resume."""

from __future__ import annotations

import json

import pytest
import torch

from rlmr.core.algo import group_advantages
from rlmr.core.records import PromptRow, RewardSignals, ScoredGroup, WritingScores
from rlmr.core.rewards import mix_rewards
from rlmr.training.driver import run_training
from rlmr.training.run_dir import RunDir, RunDirError
from tests.fake_services import FakeServices, fake_run_config

ROWS = [PromptRow(id=f"p{i}", prompt=f"Write piece {i}.") for i in range(12)]
HELD_OUT = [PromptRow(id=f"h{i}", prompt=f"Held out {i}.") for i in range(3)]


def _cfg(tmp_path, *overrides):
    return fake_run_config(
        tmp_path, "trainer.steps=3", "trainer.eval_every=2", "checkpoint.every=1", *overrides
    )


def test_steps_write_metrics_samples_checkpoints_and_curves(tmp_path):
    cfg = _cfg(tmp_path)
    services = FakeServices()
    run = RunDir(cfg)
    rows = run_training(cfg, services, run, ROWS, HELD_OUT)
    assert [r["step"] for r in rows] == [0, 1, 2, 3]
    assert (
        "eval/pass_rate" in rows[0]
        and "eval/pass_rate" in rows[2]
        and "eval/pass_rate" not in rows[1]
    )
    for key in (
        "reward_mean",
        "writing_mean",
        "pass_rate",
        "adv_mean",
        "adv_std",
        "response_len_mean",
        "response_len_max",
        "frac_zero_std",
        "clip_frac",
        "entropy",
        "kl",
        "time/rollout_s",
        "time/reward_s",
        "time/update_s",
        "time/sync_s",
        "time/step_s",
    ):
        assert key in rows[1], key
    lines = [json.loads(x) for x in (run.path / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [0, 1, 2, 3]
    assert (run.path / "samples.jsonl").read_text().count("\n") == 3 * cfg.logging.samples_per_step
    assert (run.path / "config.yaml").exists() and (run.path / "curves.png").stat().st_size > 1000
    assert [p.name for p in run.checkpoint_dirs()] == [
        "step_000002",
        "step_000003",
    ]  # keep_last = 2
    assert (run.path / "checkpoints" / "latest").read_text() == "step_000003"
    assert services.syncs == 3 and services.reference_calls == 0  # beta = 0: no reference model


def test_every_violator_in_a_mixed_group_gets_a_negative_advantage(tmp_path):
    cfg = _cfg(tmp_path)
    services = FakeServices()
    rows = run_training(cfg, services, RunDir(cfg), ROWS)
    for batch in services.batches:
        adv = batch.advantages.reshape(2, 4)
        # Responses 1, 3 contain "ok" (pass); 0, 2 do not (violate). Writing grows with
        # length, so violator 2 out-writes passer 1, and is still pushed below zero.
        assert (adv[:, [0, 2]] < 0).all()
        assert (adv[:, 3] > 0).all() and (adv[:, 3] == adv.max(dim=1).values).all()
    assert all(r["violator_adv_max"] < 0 for r in rows if "violator_adv_max" in r)


def test_dynamic_sampling_replaces_zero_variance_groups(tmp_path):
    cfg = _cfg(
        tmp_path,
        "rollout.dynamic_sampling=true",
        "rollout.max_refill_rounds=3",
        "trainer.steps=1",
        "data.shuffle=false",
    )
    # Prompts p0..p5: every response identical -> zero variance; p6.. give mixed verdicts.
    flat = {f"Write piece {i}." for i in range(6)}

    def respond(prompt, i):
        return "same" if prompt in flat else ("ok" if i % 2 else "bad")

    services = FakeServices(respond)
    rows = run_training(cfg, services, RunDir(cfg), ROWS, ())
    assert services.sampled_prompt_ids == [["p0", "p1"], ["p2", "p3"], ["p4", "p5"], ["p6", "p7"]]
    adv = services.batches[0].advantages.reshape(2, 4)
    assert (adv != 0).all()  # only informative groups reached the learner
    assert rows[0]["frac_zero_std"] == 1.0  # measured on the first round, before refills


def test_without_dynamic_sampling_flat_groups_are_kept_and_counted(tmp_path):
    cfg = _cfg(tmp_path, "trainer.steps=1", "data.shuffle=false")
    services = FakeServices(
        lambda prompt, i: "same" if prompt == "Write piece 0." else ("ok" if i % 2 else "x")
    )
    rows = run_training(cfg, services, RunDir(cfg), ROWS, ())
    assert services.sampled_prompt_ids == [["p0", "p1"]]
    adv = services.batches[0].advantages.reshape(2, 4)
    assert (adv[0] == 0).all() and (adv[1] != 0).all()
    assert rows[0]["frac_zero_std"] == 0.5


def test_kl_in_reward_keeps_every_violator_negative(tmp_path):
    """Equal writing scores, and the compliant responses far from the reference: a KL
    subtracted after mixing would lift the violators above the mean."""
    cfg = _cfg(tmp_path, "algo.kl={beta: 0.5, estimator: k1, in_loss: false}", "trainer.steps=2")

    class FarFromReference(FakeServices):
        def score(self, groups, judge=True):
            return [
                ScoredGroup(
                    s.group, s.verdicts, WritingScores(scores=tuple(0.5 for _ in s.group.texts))
                )
                for s in super().score(groups, judge)
            ]

        def reference_logprobs(self, tokens):
            self.reference_calls += 1
            # Rollout log-probs are -1 per token; make passing responses (odd index) diverge more.
            far = torch.tensor([(i % 2) * 3.0 for i in range(len(tokens))])[:, None]
            return (tokens.rollout_logprobs - far) * tokens.response_mask

    services = FarFromReference()
    rows = run_training(cfg, services, RunDir(cfg), ROWS, ())
    for batch in services.batches:
        adv = batch.advantages.reshape(2, 4)
        assert (adv[:, [0, 2]] < 0).all()
    assert all(r["violator_adv_max"] < 0 for r in rows)


class RecordingServices(FakeServices):
    """Keeps what the judge and the verifier said, to recompute the step's rewards by hand, and
    each sampling's parameters, each scoring's judge flag and each checkpoint's step."""

    def __init__(self, *args):
        super().__init__(*args)
        self.scored = []
        self.params = []
        self.judged = []
        self.saved_steps = []

    def sample(self, rows, params):
        self.params.append(params)
        return super().sample(rows, params)

    def score(self, groups, judge=True):
        self.judged.append(judge)
        out = super().score(groups, judge)
        self.scored.append(out)
        return out

    def save(self, directory, client_state, remote=None):
        self.saved_steps.append(client_state["step"])
        super().save(directory, client_state, remote)


def test_kl_in_reward_is_subtracted_from_the_writing_score_before_mixing(tmp_path):
    beta = 0.1
    cfg = _cfg(
        tmp_path / "kl",
        f"algo.kl={{beta: {beta}, estimator: k1, in_loss: false}}",
        "trainer.steps=1",
        "trainer.eval_every=0",
    )
    services = RecordingServices()
    run = RunDir(cfg)
    rows = run_training(cfg, services, run, ROWS, ())
    assert services.reference_calls == 1 and rows[0]["time/reference_s"] >= 0
    batch = services.batches[0]
    assert batch.ref_logprobs is None  # KL in the reward: the learner gets no reference log-probs
    signals = RewardSignals.of(services.scored[0])
    # The fake reference gives -1.5 per response token: k1 = logp - logp_ref summed over the
    # response.
    kl = ((batch.rollout_logprobs + 1.5) * batch.response_mask).sum(-1).double().reshape(2, 4)
    assert (kl != 0).all()
    rewards = mix_rewards(
        signals.writing - beta * kl, signals.passed, passed_fraction=signals.passed_fraction
    )
    assert torch.equal(batch.advantages, group_advantages(rewards).reshape(-1).float())
    assert rows[0]["kl_reward_mean"] == pytest.approx(float(kl.mean()))
    assert rows[0]["reward_mean"] == pytest.approx(float(rewards.mean()))
    # The penalty is taken in the writing score's float64: samples.jsonl holds these rewards
    # exactly (beta * kl in float32 would round them).
    samples = [json.loads(x) for x in (run.path / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 4
    for k, sample in enumerate(samples):
        assert sample["reward"] == float(rewards.reshape(-1)[k])
        assert sample["advantage"] == float(group_advantages(rewards).reshape(-1)[k])

    plain_cfg = _cfg(tmp_path / "plain", "trainer.steps=1", "trainer.eval_every=0")
    plain = run_training(plain_cfg, FakeServices(), RunDir(plain_cfg), ROWS, ())
    assert rows[0]["reward_mean"] < plain[0]["reward_mean"]  # a positive KL lowers the reward


def test_resume_continues_with_the_same_data_order(tmp_path):
    straight = FakeServices()
    cfg = _cfg(tmp_path / "a", "trainer.eval_every=0")
    run_training(cfg, straight, RunDir(cfg), ROWS, ())

    cfg2 = _cfg(tmp_path / "b", "trainer.eval_every=0", "trainer.steps=2")
    first = FakeServices()
    run_training(cfg2, first, RunDir(cfg2), ROWS, ())
    with pytest.raises(RunDirError, match="already holds a run"):
        RunDir(cfg2)
    cfg3 = _cfg(tmp_path / "b", "trainer.eval_every=0", "trainer.steps=3")
    resumed = FakeServices()
    rows = run_training(cfg3, resumed, RunDir(cfg3, resume=True), ROWS, ())
    assert [r["step"] for r in rows] == [3]
    assert resumed.loaded_from.endswith("step_000002")
    assert resumed.sampled_prompt_ids == straight.sampled_prompt_ids[2:]
    assert resumed.updates == 3
    metrics = [
        json.loads(x)["step"]
        for x in (tmp_path / "b" / "run" / "metrics.jsonl").read_text().splitlines()
    ]
    assert metrics == [1, 2, 3]


def test_resume_without_checkpoint_is_refused(tmp_path):
    cfg = _cfg(tmp_path)
    with pytest.raises(RunDirError, match="no complete checkpoint"):
        RunDir(cfg, resume=True)


def _one_minute_budget(tmp_path, monkeypatch, *overrides):
    """A 50-step run with a 1-minute budget on a clock that advances 25 s per reading: it is read
    once at the start and once after each step, so steps end at 25, 50 and 75 s and step 3 is
    the first to cross 60 s and the last to run."""
    import rlmr.training.metrics as metrics

    clock = iter(range(0, 10_000, 25))
    monkeypatch.setattr(metrics.time, "monotonic", lambda: next(clock))
    return _cfg(
        tmp_path,
        "trainer.steps=50",
        "trainer.max_wall_minutes=1",
        "trainer.eval_every=0",
        "checkpoint.every=0",
        *overrides,
    )


def test_wall_clock_budget_stops_early_with_eval_and_checkpoint(tmp_path, monkeypatch):
    cfg = _one_minute_budget(tmp_path, monkeypatch)
    services = FakeServices()
    rows = run_training(cfg, services, RunDir(cfg), ROWS, HELD_OUT)
    assert [r["step"] for r in rows] == [0, 1, 2, 3] and services.updates == 3
    assert (
        "eval/pass_rate" in rows[-1] and "eval/pass_rate" not in rows[2]
    )  # the last step is evaluated
    assert (tmp_path / "run" / "checkpoints" / "latest").read_text() == "step_000003"


def test_resume_auto_starts_fresh_then_resumes(tmp_path):
    cfg = _cfg(tmp_path, "trainer.eval_every=0", "trainer.steps=1")
    run = RunDir(cfg, resume="auto")
    assert not run.resuming
    run_training(cfg, FakeServices(), run, ROWS, ())
    cfg2 = _cfg(tmp_path, "trainer.eval_every=0", "trainer.steps=2")
    run2 = RunDir(cfg2, resume="auto")
    assert run2.resuming
    assert [r["step"] for r in run_training(cfg2, FakeServices(), run2, ROWS, ())] == [2]


def test_object_store_output_dir_resumes_from_the_uri_alone(tmp_path, monkeypatch):
    """output_dir as an fsspec URI: the run is mirrored there, and a resume on a machine with an
    empty cache (a resubmitted job) downloads the checkpoint and continues."""
    monkeypatch.setenv("RLMR_CACHE", str(tmp_path / "cache-1"))
    uri = f"file://{tmp_path}/bucket"
    cfg = _cfg(
        tmp_path / "c", f"logging.output_dir={uri}", "trainer.eval_every=0", "trainer.steps=2"
    )
    run_training(cfg, FakeServices(), RunDir(cfg), ROWS, ())
    remote = tmp_path / "bucket" / "run"
    assert (remote / "checkpoints" / "latest").read_text() == "step_000002"
    assert (remote / "checkpoints" / "step_000002" / "learner.json").exists()
    assert (remote / "checkpoints" / "step_000002" / "trainer_state.json").exists()
    assert [json.loads(x)["step"] for x in (remote / "metrics.jsonl").read_text().splitlines()] == [
        1,
        2,
    ]
    with pytest.raises(RunDirError, match="already holds a run"):
        RunDir(cfg)

    monkeypatch.setenv("RLMR_CACHE", str(tmp_path / "cache-2"))  # a fresh machine
    cfg3 = _cfg(
        tmp_path / "c", f"logging.output_dir={uri}", "trainer.eval_every=0", "trainer.steps=3"
    )
    services = FakeServices()
    rows = run_training(cfg3, services, RunDir(cfg3, resume=True), ROWS, ())
    assert [r["step"] for r in rows] == [3] and services.updates == 3
    assert (remote / "checkpoints" / "latest").read_text() == "step_000003"
    assert not (
        remote / "checkpoints" / "step_000001"
    ).exists()  # keep_last = 2 applies remotely too
    assert [json.loads(x)["step"] for x in (remote / "metrics.jsonl").read_text().splitlines()] == [
        1,
        2,
        3,
    ]


def test_resume_auto_sets_aside_an_attempt_that_never_checkpointed(tmp_path):
    cfg = _cfg(tmp_path, "trainer.eval_every=0", "trainer.steps=1")
    run = RunDir(cfg)
    run.log(1, {"reward_mean": 0.1})
    (run.path / "samples.jsonl").write_text('{"step": 1}\n{"step": 2, "resp')  # killed mid-write
    again = RunDir(cfg, resume="auto")
    assert not again.resuming and not (again.path / "metrics.jsonl").exists()
    aside = [p for p in again.path.iterdir() if p.name.startswith("abandoned-")]
    assert (
        len(aside) == 1
        and (aside[0] / "metrics.jsonl").exists()
        and (aside[0] / "samples.jsonl").exists()
    )


def test_truncate_after_drops_a_line_cut_short_by_a_crash(tmp_path):
    cfg = _cfg(tmp_path)
    run = RunDir(cfg)
    (run.path / "samples.jsonl").write_text('{"step": 1}\n{"step": 2}\n{"step": 3, "resp')
    run.truncate_after(2)
    assert (run.path / "samples.jsonl").read_text() == '{"step": 1}\n{"step": 2}\n'


def test_resume_without_optimizer_state_is_refused_clearly(tmp_path):
    cfg = _cfg(tmp_path, "trainer.eval_every=0", "trainer.steps=1")

    no_optimizer = FakeServices()
    no_optimizer.save_optimizer = False
    run_training(cfg, no_optimizer, RunDir(cfg), ROWS, ())
    cfg2 = _cfg(tmp_path, "trainer.eval_every=0", "trainer.steps=2")
    with pytest.raises(RunDirError, match="holds no optimizer state"):
        run_training(cfg2, FakeServices(), RunDir(cfg2, resume=True), ROWS, ())


def test_progress_bar_total_follows_the_wall_clock_budget():
    from rlmr.training.metrics import expected_last_step

    assert expected_last_step(200, 10, 45.0, None) == 200
    # 10 steps done at 45 s each, 17 minutes left: 22 more full steps fit, plus the one that
    # crosses.
    assert expected_last_step(200, 10, 45.0, 17 * 60) == 10 + 1 + 22
    assert expected_last_step(20, 10, 1.0, 3600) == 20
    assert expected_last_step(200, 10, 45.0, -5) == 11


def test_refills_stop_after_max_refill_rounds_and_flat_groups_fill_the_batch(tmp_path):
    cfg = _cfg(
        tmp_path,
        "rollout.dynamic_sampling=true",
        "rollout.max_refill_rounds=1",
        "trainer.steps=1",
        "trainer.eval_every=0",
        "data.shuffle=false",
        "logging.samples_per_step=8",
    )
    services = RecordingServices(lambda prompt, i: "same")  # every group flat
    run = RunDir(cfg)
    rows = run_training(cfg, services, run, ROWS, ())
    assert services.sampled_prompt_ids == [["p0", "p1"], ["p2", "p3"]]  # one refill, no more
    assert (services.batches[0].advantages == 0).all() and rows[0]["frac_zero_std"] == 1.0
    samples = [json.loads(x) for x in (run.path / "samples.jsonl").read_text().splitlines()]
    assert [s["prompt_id"] for s in samples] == ["p0"] * 4 + ["p1"] * 4  # first set aside first


def test_checkpoints_and_evaluations_follow_their_cadence(tmp_path):
    cfg = _cfg(tmp_path, "trainer.steps=5", "checkpoint.every=2", "trainer.eval_every=2")
    services = RecordingServices()
    rows = run_training(cfg, services, RunDir(cfg), ROWS, HELD_OUT)
    assert [r["step"] for r in rows] == [0, 1, 2, 3, 4, 5]
    assert services.saved_steps == [2, 4, 5]  # every second step, and the last
    evaluated = [r for r in rows if "eval/pass_rate" in r]
    assert [r["step"] for r in evaluated] == [0, 2, 4, 5]
    assert all(r["eval/prompts"] == 3 and r["time/eval_s"] >= 0 for r in evaluated)
    # Held-out prompts are verified only, never judged; training groups are judged.
    train, held_out = True, False
    assert services.judged == [
        held_out,
        train,
        train,
        held_out,
        train,
        train,
        held_out,
        train,
        held_out,
    ]
    for r in rows[1:]:
        for phase in ("rollout", "reward", "update", "sync", "step"):
            assert r[f"time/{phase}_s"] >= 0


def test_a_resumed_run_does_not_evaluate_step_zero_again(tmp_path):
    cfg = _cfg(tmp_path, "trainer.steps=1", "trainer.eval_every=0")
    run_training(cfg, FakeServices(), RunDir(cfg), ROWS, HELD_OUT)
    cfg2 = _cfg(tmp_path, "trainer.steps=2", "trainer.eval_every=0")
    services = RecordingServices()
    rows = run_training(cfg2, services, RunDir(cfg2, resume=True), ROWS, HELD_OUT)
    assert [r["step"] for r in rows] == [2] and "eval/pass_rate" in rows[0]
    assert services.judged == [True, False] and services.syncs == 2


def test_the_time_budget_stop_is_announced_and_the_bar_follows_it(tmp_path, monkeypatch, capsys):
    import rlmr.training.metrics as metrics

    cfg = _one_minute_budget(tmp_path, monkeypatch, "logging.progress_bar=true")
    bars = []
    real = metrics.Progress.update

    def update(self, step, values):
        real(self, step, values)
        bars.append((self.bar.n, self.bar.total))

    monkeypatch.setattr(metrics.Progress, "update", update)
    rows = run_training(cfg, FakeServices(), RunDir(cfg), ROWS, ())
    assert [r["step"] for r in rows] == [1, 2, 3]
    # 25 s a step: after step 1, 35 s left (one more step, plus the one that crosses).
    assert bars == [(1, 3), (2, 3), (3, 4)]
    out = capsys.readouterr()
    assert "rlmr: stopping after step 3: trainer.max_wall_minutes (1) reached\n" in out.err
    assert "stopping" not in out.out


def test_a_refill_samples_only_the_places_left(tmp_path):
    """p0 flat, p1 mixed: the refill asks for one prompt, and the kept group comes first."""
    cfg = _cfg(
        tmp_path,
        "rollout.dynamic_sampling=true",
        "trainer.steps=1",
        "trainer.eval_every=0",
        "data.shuffle=false",
        "logging.samples_per_step=8",
    )
    services = RecordingServices(
        lambda prompt, i: "same" if prompt == "Write piece 0." else ("ok" if i % 2 else "x")
    )
    run = RunDir(cfg)
    rows = run_training(cfg, services, run, ROWS, ())
    assert services.sampled_prompt_ids == [["p0", "p1"], ["p2"]]
    samples = [json.loads(x) for x in (run.path / "samples.jsonl").read_text().splitlines()]
    assert [s["prompt_id"] for s in samples] == ["p1"] * 4 + ["p2"] * 4
    assert (services.batches[0].advantages != 0).all() and rows[0]["frac_zero_std"] == 0.5


def test_the_evaluation_before_any_update_is_logged_as_step_zero(tmp_path):
    """The evaluation before the first update goes to metrics, TensorBoard and W&B as step 0."""
    logged_steps = []
    cfg = _cfg(tmp_path, "trainer.steps=1")
    run = RunDir(cfg)
    log = run.log
    run.log = lambda step, metrics: (logged_steps.append(step), log(step, metrics))[1]
    run_training(cfg, FakeServices(), run, ROWS, HELD_OUT)
    assert logged_steps == [0, 1]


def test_the_task_picks_the_step_and_the_evaluation_the_caller_did_not_give(tmp_path, monkeypatch):
    from rlmr.training import driver, judge_task

    calls = []

    def fake(name):
        def fn(cfg, services, rows_or_sampler, *rest):
            calls.append(name)
            if name.endswith("step"):
                return {"reward_mean": 0.0}, []
            return {"eval/score": 1.0}

        return fn

    monkeypatch.setattr(judge_task, "judge_training_step", fake("judge step"))
    monkeypatch.setattr(judge_task, "judge_evaluate", fake("judge eval"))
    monkeypatch.setattr(driver, "training_step", fake("policy step"))
    monkeypatch.setattr(driver, "evaluate", fake("policy eval"))
    for task in ("policy", "judge"):
        for k, given in enumerate(
            ({}, {"step_fn": fake("own step")}, {"eval_fn": fake("own eval")})
        ):
            where = tmp_path / f"{task}-{k}"
            cfg = _cfg(where, "trainer.steps=1").model_copy(update={"task": task})
            calls.clear()
            run_training(cfg, FakeServices(), RunDir(cfg), ROWS, HELD_OUT, **given)
            step = "own step" if "step_fn" in given else f"{task} step"
            evaluation = "own eval" if "eval_fn" in given else f"{task} eval"
            assert set(calls) == {step, evaluation}, (task, given, calls)

"""Asynchronous rollout (`rollout.max_staleness`) over in-process fake services: the k = 0
pipeline is the synchronous loop bit for bit, rollout of step t+1 really overlaps training of
step t, staleness is stamped, bounded and logged, and resume keeps the data order."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from rlmr.config import ConfigError
from rlmr.core.records import Group, PromptRow, Response, ScoredGroup, Verdicts
from rlmr.training.driver import (
    run_training,
    sample_step,
    staleness,
    staleness_metrics,
    train_step,
    training_step,
)
from rlmr.training.pipeline import AsyncSteps, VersionedServices
from rlmr.training.run_dir import RunDir
from tests.fake_services import FakeServices, fake_run_config

ROWS = [PromptRow(id=f"p{i}", prompt=f"Write piece {i}.") for i in range(12)]
HELD_OUT = [PromptRow(id=f"h{i}", prompt=f"Held out {i}.") for i in range(3)]
ASYNC = ("rollout.max_staleness=1", "algo.behaviour_weight_cap=2.0")


def _cfg(tmp_path, *overrides):
    return fake_run_config(tmp_path, "trainer.steps=4", "checkpoint.every=2", *overrides)


def _without_times(rows):
    return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in rows]


def _same_batches(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        for field in ("input_ids", "attention_mask", "response_mask", "rollout_logprobs"):
            assert torch.equal(getattr(x, field), getattr(y, field)), field
        assert torch.equal(x.advantages, y.advantages)


@pytest.mark.parametrize("beta", ["0.0", "0.1"])
def test_the_pipeline_without_staleness_is_the_synchronous_loop_bit_for_bit(tmp_path, beta):
    """Same seeds, same fakes: `AsyncSteps(0)` (sampling on the pipeline's thread, data state
    and versions through its bookkeeping) gives the synchronous loop's batches, metrics,
    samples and checkpoints exactly."""
    runs = []
    for name, step_fn in (
        ("sync", training_step),
        ("pipe", AsyncSteps(0, sample_step, train_step)),
    ):
        cfg = _cfg(tmp_path / name, "trainer.eval_every=2", f"algo.kl.beta={beta}")
        services = FakeServices()
        rows = run_training(cfg, services, RunDir(cfg), ROWS, HELD_OUT, step_fn=step_fn)
        runs.append((services, rows, tmp_path / name / "run"))
    (sync, sync_rows, sync_dir), (pipe, pipe_rows, pipe_dir) = runs
    _same_batches(sync.batches, pipe.batches)
    assert _without_times(sync_rows) == [
        {k: v for k, v in r.items() if k != "time/wait_rollout_s"}
        for r in _without_times(pipe_rows)
    ]
    assert sync.sampled_prompt_ids == pipe.sampled_prompt_ids
    assert sync.reference_calls == pipe.reference_calls and sync.syncs == pipe.syncs
    assert (sync_dir / "samples.jsonl").read_text() == (pipe_dir / "samples.jsonl").read_text()
    for step in ("step_000002", "step_000004"):
        state = f"checkpoints/{step}/trainer_state.json"
        assert (sync_dir / state).read_text() == (pipe_dir / state).read_text()


class OverlapServices(FakeServices):
    """Sampling of step t+1 and the update of step t must meet at a barrier: a loop that does
    not run them at the same time times out there."""

    def __init__(self, steps: int):
        super().__init__()
        self.steps = steps
        self.meet = threading.Barrier(2, timeout=20)
        self.sample_calls = 0
        self.update_calls = 0

    def sample(self, rows, params):
        self.sample_calls += 1
        if params.n == 4 and 2 <= self.sample_calls <= self.steps:  # a training step's rollout
            self.meet.wait()
        return super().sample(rows, params)

    def update_policy(self, batch):
        self.update_calls += 1
        if self.update_calls < self.steps:
            self.meet.wait()
        return super().update_policy(batch)


def test_rollout_of_the_next_step_runs_while_the_learner_trains(tmp_path):
    cfg = _cfg(tmp_path, *ASYNC)
    services = OverlapServices(steps=4)
    rows = run_training(cfg, services, RunDir(cfg), ROWS)  # the config picks the pipeline
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    # Step 1 was sampled from the initial weights; every later step one update behind.
    assert rows[0]["staleness/0"] == 1.0 and rows[0]["staleness_max"] == 0.0
    for r in rows[1:]:
        assert r["staleness/1"] == 1.0 and r["staleness_mean"] == 1.0, r
        assert r["time/wait_rollout_s"] >= 0
    assert services.syncs == 4 and services.updates == 4


def test_the_synchronous_loop_cannot_pass_the_overlap_barrier(tmp_path):
    """The barrier above is a real check: without the pipeline it is never met."""
    cfg = _cfg(tmp_path, "trainer.steps=2")
    services = OverlapServices(steps=2)
    services.meet = threading.Barrier(2, timeout=1)
    with pytest.raises(threading.BrokenBarrierError):
        run_training(cfg, services, RunDir(cfg), ROWS)


def test_asynchronous_batches_hold_the_same_prompts_and_samples_as_synchronous_ones(tmp_path):
    """With responses that do not depend on the weights, only the staleness differs."""
    sync, pipe = FakeServices(), FakeServices()
    cfg = _cfg(tmp_path / "a", "trainer.eval_every=2")
    run_training(cfg, sync, RunDir(cfg), ROWS, HELD_OUT)
    cfg = _cfg(tmp_path / "b", "trainer.eval_every=2", *ASYNC)
    rows = run_training(cfg, pipe, RunDir(cfg), ROWS, HELD_OUT)
    _same_batches(sync.batches, pipe.batches)
    assert sorted(map(tuple, sync.sampled_prompt_ids)) == sorted(
        map(tuple, pipe.sampled_prompt_ids)
    )
    assert all("eval/pass_rate" in r for r in rows if r["step"] in (0, 2, 4))


class StopAfter(FakeServices):
    """Receives a stop signal during the update of step `stop_at`, once the step after it has
    been sampled ahead (so the prompt sampler is past the step being checkpointed)."""

    def __init__(self, stop, stop_at):
        super().__init__()
        self.stop, self.stop_at = stop, stop_at

    def update_policy(self, batch):
        out = super().update_policy(batch)
        if self.updates == self.stop_at:
            self.stop.received = "SIGTERM"
            deadline = time.monotonic() + 30
            while len(self.sampled_prompt_ids) <= self.stop_at:  # the sampling thread's step
                assert time.monotonic() < deadline, "step stop_at + 1 was never sampled ahead"
                time.sleep(0.01)
        return out


def test_a_stopped_asynchronous_run_resumes_with_the_prompts_it_had_sampled_ahead(tmp_path):
    straight = FakeServices()
    cfg = _cfg(tmp_path / "a", *ASYNC)
    run_training(cfg, straight, RunDir(cfg), ROWS)

    stop = type("Stop", (), {"received": None})()
    first = StopAfter(stop, stop_at=2)
    cfg = _cfg(tmp_path / "b", *ASYNC)
    rows = run_training(cfg, first, RunDir(cfg), ROWS, stop=stop)
    assert [r["step"] for r in rows] == [1, 2]
    assert len(first.sampled_prompt_ids) == 3  # step 3 was sampled ahead, then dropped
    resumed = FakeServices()
    rows = run_training(cfg, resumed, RunDir(cfg, resume=True), ROWS)
    assert [r["step"] for r in rows] == [3, 4]
    assert resumed.sampled_prompt_ids == straight.sampled_prompt_ids[2:]
    _same_batches(resumed.batches, straight.batches[2:])


def _group(version: int) -> ScoredGroup:
    response = Response("r", (1,), (-1.0,), "stop")
    verdicts = Verdicts(passed=(True, True), passed_fraction=(1.0, 1.0), details=((), ()))
    return ScoredGroup(
        Group(PromptRow("p", "x"), "x", (1,), (response, response), version), verdicts, None
    )


def test_staleness_is_counted_per_group_and_refused_beyond_the_bound():
    assert staleness([_group(3), _group(2), _group(3)], version=3, max_staleness=1) == [0, 1, 0]
    with pytest.raises(RuntimeError, match="groups sampled 2 weight versions away"):
        staleness([_group(1)], version=3, max_staleness=1)
    with pytest.raises(RuntimeError, match="sampled -1 weight versions away"):
        staleness([_group(4)], version=3, max_staleness=2)
    assert staleness_metrics([0, 1, 1, 2], 2) == {
        "staleness_mean": 1.0,
        "staleness_max": 2.0,
        "staleness/0": 0.25,
        "staleness/1": 0.5,
        "staleness/2": 0.25,
    }
    assert staleness_metrics([1], 1) == {  # one group
        "staleness_mean": 1.0,
        "staleness_max": 1.0,
        "staleness/0": 0.0,
        "staleness/1": 1.0,
    }
    assert staleness_metrics([], 1) == {  # none: zeros, not an error
        "staleness_mean": 0.0,
        "staleness_max": 0.0,
        "staleness/0": 0.0,
        "staleness/1": 0.0,
    }


def test_versioned_services_stamp_samples_with_the_weights_that_made_them():
    services = VersionedServices(FakeServices())
    from rlmr.engine.base import SamplingParams

    params = SamplingParams(n=2, max_new_tokens=4, seed=1)
    assert {g.version for g in services.sample(ROWS[:2], params)} == {0}
    services.sync_weights()
    services.sync_weights()
    assert services.version == 2 and services.syncs == 2  # other attributes pass through
    groups = services.sample(ROWS[:2], params)
    assert {g.version for g in groups} == {2}
    # scoring passes through with the Services default (the judge scores) or as asked
    assert all(s.writing is not None for s in services.score(groups))
    assert all(s.writing is None for s in services.score(groups, judge=False))
    with pytest.raises(
        TypeError, match=r"^AsyncSteps needs VersionedServices \(it reads the weight version\)$"
    ):
        AsyncSteps(1, sample_step, train_step)(None, FakeServices(), None, 1)
    with pytest.raises(ValueError, match="max_staleness: must be >= 0"):
        AsyncSteps(-1, sample_step, train_step)


def test_asynchronous_rollout_needs_the_correction_and_a_policy(tmp_path):
    with pytest.raises(ConfigError, match="set algo.behaviour_weight_cap"):
        fake_run_config(tmp_path, "rollout.max_staleness=1")
    with pytest.raises(ConfigError, match="asynchronous rollout trains a policy only"):
        fake_run_config(tmp_path, *ASYNC, "task=judge")


def test_close_waits_for_the_step_being_sampled_and_drops_it(tmp_path):
    """A step sampled ahead that is still running when the loop ends: `close()` returns only
    after it finished (no sampling thread left calling the services), and nothing is kept."""
    cfg = _cfg(tmp_path, *ASYNC)
    release, finished = threading.Event(), threading.Event()

    def slow_ahead(cfg, services, sampler, s):
        if s == 2:
            assert release.wait(10)
            finished.set()
        return sample_step(cfg, services, sampler, s)

    steps = AsyncSteps(1, slow_ahead, train_step)
    services = VersionedServices(FakeServices())
    from rlmr.data.prompts import PromptSampler

    steps(cfg, services, PromptSampler(ROWS, seed=0), 1)  # trains 1, samples 2 on its thread
    closer = threading.Thread(target=steps.close)
    closer.start()
    closer.join(0.3)
    assert closer.is_alive() and not finished.is_set()  # still waiting for step 2
    release.set()
    closer.join(10)
    assert not closer.is_alive() and finished.is_set()
    assert steps._ahead == {}


def test_steps_ahead_are_sampled_one_at_a_time_on_the_named_rollout_thread(tmp_path):
    """With k = 2 two steps are queued at once; they must still be sampled one after the other
    (the prompt sampler and the weight version are read in step order) on the thread named
    `rlmr-rollout` (what a stack dump of a hung run shows)."""
    cfg = _cfg(tmp_path, "rollout.max_staleness=2", "algo.behaviour_weight_cap=2.0")
    spans, names, lock = [], set(), threading.Lock()

    def timed(cfg, services, sampler, s):
        start = time.perf_counter()
        time.sleep(0.15)
        out = sample_step(cfg, services, sampler, s)
        with lock:
            spans.append((start, time.perf_counter()))
            names.add(threading.current_thread().name.rsplit("_", 1)[0])
        return out

    run_training(cfg, FakeServices(), RunDir(cfg), ROWS, step_fn=AsyncSteps(2, timed, train_step))
    spans.sort()
    assert len(spans) == 4
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))  # never two at once
    assert names == {"rlmr-rollout"}


def test_a_step_counts_its_wait_for_the_rollout(tmp_path):
    """The step time runs from the call: waiting for a rollout that is not ready yet is part of
    the step (`time/step_s` >= `time/wait_rollout_s` >= the sampling time)."""
    cfg = _cfg(tmp_path, *ASYNC, "trainer.steps=2")

    def slow(cfg, services, sampler, s):
        time.sleep(0.3)
        return sample_step(cfg, services, sampler, s)

    rows = run_training(
        cfg, FakeServices(), RunDir(cfg), ROWS, step_fn=AsyncSteps(1, slow, train_step)
    )
    first = rows[0]
    assert first["time/wait_rollout_s"] >= 0.25
    assert first["time/step_s"] >= first["time/wait_rollout_s"]


class _Done:
    def __init__(self, value):
        self.value = value

    def get(self):
        return self.value


class StreamingServices(FakeServices):
    """Streams as Ray's services do: rows split into shares, the last share answered first, and
    scoring of a share starts as soon as it is answered; `events` records the order."""

    def __init__(self, shares: int = 2):
        super().__init__()
        self.shares, self.events = shares, []

    def sample_chunks(self, rows, params):
        from rlmr.core.records import split_evenly

        parts = split_evenly(list(rows), self.shares)
        for share in reversed(range(len(parts))):
            self.events.append(("sampled", share))
            yield share, self.sample(parts[share], params)

    def score_async(self, groups, judge=True):
        self.events.append(("scoring", [g.row.id for g in groups]))
        return _Done(self.score(groups, judge))


@pytest.mark.parametrize("staleness", [0, 1])
def test_streamed_scoring_gives_the_batch_loop_s_steps_and_starts_each_share_at_once(
    tmp_path, staleness
):
    """A share is sent for scoring before the next share is sampled, and the groups come back in
    the prompts' order: the steps equal those of services that sample, then score, the whole
    batch (synchronous and one step off)."""
    runs = []
    for name, services in (("batch", FakeServices()), ("stream", StreamingServices())):
        cfg = _cfg(
            tmp_path / name,
            "rollout.prompts_per_step=4",
            f"rollout.max_staleness={staleness}",
            "algo.behaviour_weight_cap=2.0",
        )
        rows = run_training(cfg, services, RunDir(cfg), ROWS, HELD_OUT)
        runs.append((services, rows))
    (batch, batch_rows), (stream, stream_rows) = runs
    _same_batches(batch.batches, stream.batches)

    def steps(rows):  # one step off, a group's staleness depends on the threads' timing
        return [{k: v for k, v in r.items() if not k.startswith("staleness")} for r in rows]

    assert steps(_without_times(batch_rows)) == steps(_without_times(stream_rows))
    first_step = next(ids for ids in batch.sampled_prompt_ids if ids[0].startswith("p"))
    assert len(first_step) == 4
    assert stream.events[:4] == [
        ("sampled", 1),
        ("scoring", first_step[2:]),
        ("sampled", 0),
        ("scoring", first_step[:2]),
    ]
    assert sum(e[0] == "scoring" for e in stream.events) == 2 * 4  # two shares, four steps


def test_versioned_services_stamp_streamed_groups_and_hold_the_engines_while_sampling():
    services = VersionedServices(StreamingServices(), version=3)
    rows = ROWS[:4]
    from rlmr.engine.base import SamplingParams

    chunks = services.sample_chunks(rows, SamplingParams(max_new_tokens=8, n=2))
    share, groups = next(chunks)
    assert share == 1 and [g.version for g in groups] == [3, 3]
    assert not services._engines.acquire(blocking=False)  # a weight sync waits for the rest
    assert [s for s, _ in chunks] == [0]
    assert services._engines.acquire(blocking=False)
    services._engines.release()


def test_a_scoring_failure_while_streaming_leaves_the_engines_free():
    """The error reaches the caller, and the engines lock (held while shares are sampled) is
    released at once, not when the exception is collected: a weight sync must not hang."""
    from rlmr.training.driver import sample_and_score
    from rlmr.training.metrics import PhaseTimer

    class Failing(StreamingServices):
        def score_async(self, groups, judge=True):
            raise RuntimeError("judge replica lost")

    from rlmr.engine.base import SamplingParams

    services = VersionedServices(Failing())
    with pytest.raises(RuntimeError, match="judge replica lost") as caught:
        sample_and_score(
            services, ROWS[:4], SamplingParams(max_new_tokens=8, n=2), True, PhaseTimer()
        )
    assert caught.value is not None  # the exception (and its traceback) is still alive here
    assert services._engines.acquire(blocking=False)
    services._engines.release()


def test_a_rollout_says_which_step_it_samples(tmp_path):
    from rlmr.data.prompts import PromptSampler

    cfg = _cfg(tmp_path)
    sampler = PromptSampler(ROWS, seed=cfg.data.seed, shuffle=cfg.data.shuffle)
    rollout = sample_step(cfg, FakeServices(), sampler, 3)
    assert rollout.step == 3
    assert len(rollout.scored) == cfg.rollout.prompts_per_step
    assert rollout.data_state == sampler.state_dict()


def test_a_step_on_services_without_weight_versions_counts_no_staleness(tmp_path):
    """`training_step` on plain services (no VersionedServices): every group is current."""
    from rlmr.data.prompts import PromptSampler

    for k, overrides in ((0, ()), (1, ASYNC)):
        cfg = _cfg(tmp_path / str(k), *overrides)
        sampler = PromptSampler(ROWS, seed=cfg.data.seed, shuffle=cfg.data.shuffle)
        services = FakeServices()
        assert not hasattr(services, "version")
        metrics, _ = training_step(cfg, services, sampler, 1)  # k = 0 refuses any staleness
        assert services.updates == 1
        if k:
            assert metrics["staleness_mean"] == 0.0 and metrics["staleness/0"] == 1.0


def test_streamed_and_batch_sampling_report_the_same_phases():
    """Streaming keeps the step's phase names: `time/rollout_s` holds the sampling of every
    share, `time/reward_s` the scoring still running after the last share was answered."""
    import time

    from rlmr.engine.base import SamplingParams
    from rlmr.training.driver import sample_and_score
    from rlmr.training.metrics import PhaseTimer

    class Slow(StreamingServices):
        def sample(self, rows, params):
            time.sleep(0.05)
            return super().sample(rows, params)

        def score_async(self, groups, judge=True):
            done = super().score_async(groups, judge)
            slow_get = done.get
            done.get = lambda: time.sleep(0.05) or slow_get()
            return done

    params = SamplingParams(max_new_tokens=8, n=2)
    for services in (FakeServices(), Slow()):
        timer = PhaseTimer()
        scored = sample_and_score(services, ROWS[:4], params, True, timer)
        assert [s.group.row.id for s in scored] == [r.id for r in ROWS[:4]]
        assert set(timer.times) == {"time/rollout_s", "time/reward_s"}
    assert timer.times["time/rollout_s"] >= 2 * 0.05  # both shares sampled inside the phase
    assert timer.times["time/reward_s"] >= 0.05


def test_streamed_scoring_leaves_the_judge_out_when_told_to():
    """`judge=False` (a reward of constraints only) reaches every share's scoring."""
    from rlmr.engine.base import SamplingParams
    from rlmr.training.driver import sample_and_score
    from rlmr.training.metrics import PhaseTimer

    params = SamplingParams(max_new_tokens=8, n=2)
    for services in (FakeServices(), StreamingServices()):
        for judge in (True, False):
            scored = sample_and_score(services, ROWS[:4], params, judge, PhaseTimer())
            assert [s.writing is not None for s in scored] == [judge] * 4


def test_the_loop_evaluates_at_start_every_n_steps_and_last_with_the_step_number(tmp_path):
    """The evaluation gets the step it follows (0 before training) and the held-out rows; a run
    with benchmark suites and no held-out prompts evaluates too."""
    calls = []

    def eval_fn(cfg, services, rows, step):
        calls.append((step, [r.id for r in rows]))
        return {"eval/seen": float(step)}

    for name, overrides, rows in (
        ("held_out", ("trainer.eval_every=3",), HELD_OUT),
        ("suites", ("data.eval=null", "trainer.eval.suites=[ifeval]"), ()),
    ):
        calls.clear()
        cfg = _cfg(tmp_path / name, *overrides)
        logged = run_training(cfg, FakeServices(), RunDir(cfg), ROWS, rows, eval_fn=eval_fn)
        ids = [r.id for r in rows]
        steps = [0, 3, 4] if name == "held_out" else [0, 4]
        assert calls == [(s, ids) for s in steps]
        assert [r["eval/seen"] for r in logged if "eval/seen" in r] == steps


def test_the_loop_closes_its_step_function_when_it_ends_or_fails(tmp_path):
    """A step function with a `close` (the pipeline's: it stops the rollout thread) is closed once
    when the run ends, and when a step raises."""

    class Closing:
        def __init__(self, fail_at=None):
            self.closed, self.fail_at = 0, fail_at

        def __call__(self, cfg, services, sampler, step):
            if step == self.fail_at:
                raise RuntimeError("engine lost")
            return training_step(cfg, services, sampler, step)

        def close(self):
            self.closed += 1

    cfg = _cfg(tmp_path / "ends", "trainer.steps=2")
    done = Closing()
    assert [
        r["step"] for r in run_training(cfg, FakeServices(), RunDir(cfg), ROWS, step_fn=done)
    ] == [1, 2]
    assert done.closed == 1
    cfg = _cfg(tmp_path / "fails", "trainer.steps=3")
    failing = Closing(fail_at=2)
    with pytest.raises(RuntimeError, match="^engine lost$"):
        run_training(cfg, FakeServices(), RunDir(cfg), ROWS, step_fn=failing)
    assert failing.closed == 1

"""Stopping a run: SIGINT/SIGTERM finish the step, checkpoint and stop; a driver killed with
SIGKILL while it writes a checkpoint leaves the previous one to resume from; a checkpoint that
cannot be written stops the run without touching the previous one. (Fake services; the same
with Ray actors and the CLI is in tests/integration/test_faults.py.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from rlmr.training.driver import TrainingHalted, run_training, training_step
from rlmr.training.run_dir import RunDir
from rlmr.training.stop import StopSignals
from tests.fake_services import FakeServices, fake_run_config
from tests.unit.test_driver import ROWS


def _cfg(tmp_path, *overrides):
    return fake_run_config(
        tmp_path, "trainer.steps=5", "trainer.eval_every=0", "checkpoint.every=0", *overrides
    )


def _steps(run, name="metrics.jsonl"):
    return [json.loads(x)["step"] for x in (run.path / name).read_text().splitlines()]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_finishes_the_step_then_checkpoints_and_stops(tmp_path, sig, capsys):
    cfg = _cfg(tmp_path)
    run = RunDir(cfg)

    def step(cfg, services, sampler, n):
        if n == 2:
            os.kill(os.getpid(), sig)  # arrives while the step runs
        return training_step(cfg, services, sampler, n)

    with StopSignals() as stop:
        rows = run_training(cfg, FakeServices(), run, ROWS, (), step_fn=step, stop=stop)
    assert [r["step"] for r in rows] == [1, 2]
    assert _steps(run) == [1, 2]
    assert (run.path / "checkpoints" / "latest").read_text() == "step_000002"
    assert stop.received == sig.name and stop.exit_code == 128 + sig.value
    err = capsys.readouterr().err
    assert f"rlmr: {sig.name} received: finishing the step in progress" in err
    assert (
        f"rlmr: stopped after step 2 ({sig.name}); checkpoint written, continue with --resume"
        in err
    )
    assert signal.getsignal(sig) is not stop._handle  # the handlers are given back

    resumed = RunDir(cfg, resume=True)
    run_training(cfg, FakeServices(), resumed, ROWS, ())
    assert _steps(resumed) == [1, 2, 3, 4, 5]


def test_a_second_signal_stops_at_once(tmp_path):
    cfg = _cfg(tmp_path)

    def step(cfg, services, sampler, n):
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)
        return training_step(cfg, services, sampler, n)

    with pytest.raises(KeyboardInterrupt, match="SIGTERM received a second time"):
        with StopSignals() as stop:
            run_training(cfg, FakeServices(), RunDir(cfg), ROWS, (), step_fn=step, stop=stop)


KILLED_WHILE_SAVING = """
import sys, time
from pathlib import Path
from tests.fake_services import FakeServices, fake_run_config
from tests.unit.test_driver import ROWS
from rlmr.training.driver import run_training
from rlmr.training.run_dir import RunDir

class SlowSave(FakeServices):
    def save(self, directory, client_state, remote=None):
        super().save(directory, client_state, remote)
        if client_state["step"] == 2:
            Path(directory, "half_written.bin").write_bytes(b"x" * 1000)
            print("WRITING", flush=True)
            time.sleep(120)

cfg = fake_run_config(Path(sys.argv[1]), "trainer.steps=5", "trainer.eval_every=0",
                      "checkpoint.every=1", "checkpoint.keep_last=5")
run_training(cfg, SlowSave(), RunDir(cfg), ROWS, ())
"""


def test_a_driver_killed_while_writing_a_checkpoint_resumes_from_the_previous_one(repo, tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_WHILE_SAVING, str(tmp_path)],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "WRITING", proc.stderr.read()
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    cfg = fake_run_config(
        tmp_path,
        "trainer.steps=5",
        "trainer.eval_every=0",
        "checkpoint.every=1",
        "checkpoint.keep_last=5",
    )
    ckpts = tmp_path / cfg.logging.run_name / "checkpoints"
    assert (ckpts / "latest").read_text() == "step_000001"
    assert (ckpts / "step_000002.tmp" / "half_written.bin").exists()  # the torn write

    services = FakeServices()
    run = RunDir(cfg, resume=True)
    run_training(cfg, services, run, ROWS, ())
    assert services.loaded_from == str(ckpts / "step_000001")
    assert _steps(run) == [1, 2, 3, 4, 5]  # step 2's line, logged before the kill, once
    assert not (ckpts / "step_000002.tmp").exists()
    assert not (ckpts / "step_000002" / "half_written.bin").exists()
    assert (ckpts / "latest").read_text() == "step_000005"


def test_a_checkpoint_that_cannot_be_written_stops_the_run_and_keeps_the_previous(tmp_path):
    class DiskFull(FakeServices):
        def save(self, directory, client_state, remote=None):
            if client_state["step"] == 2:
                raise OSError(28, "No space left on device", directory)
            super().save(directory, client_state, remote)

    cfg = _cfg(tmp_path, "checkpoint.every=1")
    run = RunDir(cfg)
    with pytest.raises(TrainingHalted) as err:
        run_training(cfg, DiskFull(), run, ROWS, ())
    ckpts = run.path / "checkpoints"
    assert str(err.value) == (
        f"step 2: the checkpoint could not be written ([Errno 28] No space left on device: "
        f"'{ckpts / 'step_000002.tmp'}'); the last complete checkpoint is {ckpts / 'step_000001'}"
    )
    services = FakeServices()
    run_training(cfg, services, RunDir(cfg, resume=True), ROWS, ())
    assert services.loaded_from == str(ckpts / "step_000001")

    class NoDisk(FakeServices):  # the very first checkpoint fails: none to fall back on
        def save(self, directory, client_state, remote=None):
            raise OSError(28, "No space left on device", directory)

    cfg = _cfg(tmp_path / "first", "checkpoint.every=1")
    with pytest.raises(TrainingHalted, match=r"^step 1: .* the last complete checkpoint is none$"):
        run_training(cfg, NoDisk(), RunDir(cfg), ROWS, ())


@pytest.mark.parametrize(
    "error, expected",
    [
        (
            "actor",
            "rlmr train: stopped: learner replica 0, call update: ActorDiedError: gone; gave up "
            "after 0 restart(s) (cluster.actor_restarts); continue from the last complete "
            "checkpoint (none yet) with --resume",
        ),
        ("halted", "rlmr train: stopped: steps 1-3: skipped"),
    ],
)
def test_the_cli_reports_a_stopped_run_in_one_line_with_status_1(
    error, expected, repo, tmp_path, capsys, monkeypatch
):
    import rlmr.cli.train as train
    from actors.group import ActorFailed
    from rlmr.cli import main

    def stopped(*args, **kwargs):
        if error == "actor":
            raise ActorFailed(
                "learner replica 0, call update: ActorDiedError: gone; gave up after 0 "
                "restart(s) (cluster.actor_restarts)"
            )
        raise TrainingHalted("steps 1-3: skipped")

    monkeypatch.setattr(train, "run_on_ray", stopped)
    code = main(
        ["train", str(repo / "configs" / "tiny.yaml"), "--set", f"logging.output_dir={tmp_path}"]
    )
    assert code == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == expected

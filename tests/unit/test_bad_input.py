"""`rlmr train` with bad input: one line naming the file, row or key, exit status 2, and no actor
(nor Ray) started. Ray is replaced by a trap that fails the test if the run gets that far."""

from __future__ import annotations

import pytest

from rlmr.cli import main


@pytest.fixture
def no_ray(monkeypatch):
    import rlmr.cli.train as train

    def trap(*args, **kwargs):
        raise AssertionError("bad input must be refused before Ray starts")

    monkeypatch.setattr(train, "run_on_ray", trap)


def _train(repo, tmp_path, *overrides) -> list[str]:
    args = ["train", str(repo / "configs" / "tiny.yaml")]
    for item in (f"logging.output_dir={tmp_path / 'runs'}", *overrides):
        args += ["--set", item]
    return args


def test_a_model_folder_that_does_not_exist_is_one_line(repo, tmp_path, capsys, no_ray):
    code = main(_train(repo, tmp_path, f"model.source={{type: local, path: {tmp_path / 'nope'}}}"))
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith(f"rlmr train: model.source: {tmp_path / 'nope'}: not a model folder")
    assert "Traceback" not in err and len(err.splitlines()) == 1


def test_an_output_directory_that_cannot_be_written_is_refused_at_start(
    repo, tmp_path, capsys, no_ray
):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the run directory should go")
    code = main(_train(repo, tmp_path, f"logging.output_dir={blocker}"))
    err = capsys.readouterr().err.strip()
    assert code == 2
    # (the line before may be the progress of building the tiny model on first use)
    assert err.splitlines()[-1].startswith(
        f"rlmr train: logging.output_dir: cannot write the run directory {blocker}"
    )
    assert "Traceback" not in err


def test_a_data_file_with_bytes_that_are_not_utf8_names_the_line(repo, tmp_path, capsys, no_ray):
    data = tmp_path / "p.jsonl"
    data.write_bytes(b'{"id": "a", "prompt": "fine"}\n{"id": "b", "prompt": "caf\xe9"}\n')
    code = main(_train(repo, tmp_path, f"data.train={data}"))
    err = capsys.readouterr().err
    assert code == 2
    assert f"{data}:2: not valid UTF-8 (byte 0xe9 at column 27)" in err
    assert "Traceback" not in err


def test_a_second_run_into_the_same_directory_needs_resume(repo, tmp_path, capsys, no_ray):
    run = tmp_path / "runs" / "tiny"
    run.mkdir(parents=True)
    (run / "metrics.jsonl").write_text('{"step": 1}\n')
    assert main(_train(repo, tmp_path, "logging.run_name=tiny")) == 2
    err = capsys.readouterr().err
    assert f"{run} already holds a run; pass --resume" in err
    assert (run / "metrics.jsonl").read_text() == '{"step": 1}\n'  # nothing lost


def test_a_gpu_layout_on_a_machine_without_gpus_is_refused_before_ray(
    repo, tmp_path, capsys, no_ray, monkeypatch
):
    import torch

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    code = main(["train", str(repo / "configs" / "qwen2.5-7b-rlmr.yaml")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err == (
        "rlmr train: cluster.gpus_per_node: the layout needs 1 x 8 GPUs, this machine has 0 and "
        "no --address names a cluster to join"
    )


def test_a_resume_that_changes_the_data_order_is_refused_and_other_changes_are_named(
    tmp_path, capsys
):
    from rlmr.training.driver import run_training
    from rlmr.training.run_dir import RunDir, RunDirError
    from tests.fake_services import FakeServices, fake_run_config
    from tests.unit.test_driver import ROWS

    base = ("trainer.eval_every=0", "checkpoint.every=1")
    cfg = fake_run_config(tmp_path, "trainer.steps=2", *base)
    run_training(cfg, FakeServices(), RunDir(cfg), ROWS, ())
    saved = (tmp_path / "run" / "config.yaml").read_text()
    for change, listed in (
        ("data.seed=7", "data.seed 0 -> 7"),
        ("data.shuffle=false", "data.shuffle True -> False"),
    ):
        changed = fake_run_config(tmp_path, "trainer.steps=3", *base, change)
        with pytest.raises(RunDirError, match=rf"changes the data order .*\({listed}\)"):
            RunDir(changed, resume=True)
        assert (tmp_path / "run" / "config.yaml").read_text() == saved  # nothing overwritten
    more = fake_run_config(tmp_path, "trainer.steps=3", *base)
    run = RunDir(more, resume=True)
    assert run.resume_changes == {"trainer.steps": (2, 3)}
    assert "resuming with a changed config: trainer.steps 2 -> 3" in capsys.readouterr().err

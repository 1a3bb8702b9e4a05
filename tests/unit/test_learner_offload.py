"""The learner's ZeRO paths that the plain learner tests leave open: optimizer offload and the
partitioned ZeRO-3 load. Real DeepSpeed (gloo, one rank) on CPU, the tiny model of
`test_learner.py`, whose helpers and fixtures are reused.

Offload: ZeRO-Offload refuses a client torch optimizer, so the learner declares AdamW in the
DeepSpeed config and DeepSpeed builds its DeepSpeedCPUAdam (JIT-built on first use, about 90 s,
then cached in `$TORCH_EXTENSIONS_DIR`). These tests fail if the client AdamW came back (DeepSpeed
raises), if a hyperparameter or the warm-up were lost on the way (the update or the learning rate
differs from the non-offload path), or if the step moved nothing.

ZeRO-3: the model is built inside `deepspeed.zero.Init` by transformers, so its parameters are
partitioned before DeepSpeed ever sees them; the tests fail if the model were loaded whole first,
if the partitioned load lost a weight (log-probs or the export differ from the checkpoint), or if
the ZeRO-3 switch leaked into later, plain loads in the process.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from rlmr.config import LearnerConfig
from tests.fakes import tiny_cache  # noqa: F401 (fixture)
from tests.unit.test_learner import (  # noqa: F401 (fixtures)
    batch,
    make_learner,
    model_dir,
    one_rank_process_group,
    recorded_deepspeed,
    tokens,
)

LR, WARMUP = 1e-2, 3
# The learning rate after each update: LambdaLR's min(1, (step + 1) / warmup) over optimizer
# steps, the step counter having moved once per update.
EXPECTED_LRS = [LR * 2 / 3, LR, LR]


def _plain_model(path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, local_files_only=True)


def test_the_optimizer_is_declared_to_deepspeed_only_with_optimizer_offload():
    """DeepSpeed refuses a client optimizer with ZeRO-Offload (and only then): the config names
    AdamW with the client AdamW's hyperparameters, eps included (torch's default)."""
    from rlmr.training.deepspeed_settings import deepspeed_config, offloads_optimizer

    cfg = LearnerConfig(
        zero_stage=2, offload_optimizer=True, lr=3e-4, betas=(0.8, 0.95), weight_decay=0.1
    )
    ds = deepspeed_config(cfg, "bfloat16", 2, 3, 4)
    assert ds["optimizer"] == {
        "type": "AdamW",
        "params": {"lr": 3e-4, "betas": [0.8, 0.95], "eps": 1e-8, "weight_decay": 0.1},
    }
    assert ds["zero_optimization"]["offload_optimizer"] == {"device": "cpu", "pin_memory": True}
    assert "scheduler" not in ds  # the warm-up is the learner's LambdaLR, on either path
    assert torch.optim.AdamW([torch.zeros(1, requires_grad=True)]).defaults["eps"] == 1e-8
    # Parameter offload alone keeps the optimizer on the device: the client AdamW stays.
    for plain in (
        LearnerConfig(zero_stage=3, offload_params=True),
        LearnerConfig(zero_stage=3),
        LearnerConfig(),
    ):
        assert not offloads_optimizer(plain) and "optimizer" not in deepspeed_config(
            plain, "float32", 1, 1, 1
        )
    stage0 = LearnerConfig.model_construct(**{**dict(LearnerConfig()), "offload_optimizer": True})
    assert not offloads_optimizer(stage0)
    # Nothing is left for DeepSpeed or transformers to fill in ("auto").
    both = LearnerConfig(zero_stage=3, offload_optimizer=True, offload_params=True)
    assert '"auto"' not in repr(deepspeed_config(both, "float32", 1, 1, 1)).replace("'", '"')


def _flat(state: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([state[k].flatten() for k in sorted(state)])


# ZeRO-2 runs in the quick selection too (mutation testing uses it: the offload branch of the
# learner's constructor is tested nowhere else); ZeRO-3 with offload is slower.
@pytest.mark.parametrize("zero", [2, pytest.param(3, marks=pytest.mark.slow)])
def test_optimizer_offload_steps_with_cpu_adam_as_the_client_adamw_does(
    model_dir,  # noqa: F811
    zero,
    tmp_path,
):
    """Same batch, same seed, with and without offload: DeepSpeedCPUAdam takes the step, the
    weights move, the warm-up is the same, and the update matches the client AdamW's. A resume
    restores the CPU Adam states and the warm-up: the next update is the same."""
    from deepspeed.ops.adam import DeepSpeedCPUAdam

    fields = {"lr": LR, "warmup_steps": WARMUP, "weight_decay": 0.5, "betas": (0.8, 0.95)}
    offloaded = make_learner(model_dir, zero=zero, offload_optimizer=True, **fields)
    plain = make_learner(model_dir, zero=zero, **fields)
    assert type(offloaded.engine.basic_optimizer) is DeepSpeedCPUAdam
    assert type(plain.engine.basic_optimizer) is torch.optim.AdamW  # untouched without offload
    group = offloaded.engine.basic_optimizer.param_groups[0]
    assert (tuple(group["betas"]), group["eps"], group["weight_decay"]) == ((0.8, 0.95), 1e-8, 0.5)
    assert group["lr"] == pytest.approx(LR / WARMUP)  # the warm-up's first step, set at start

    start = offloaded.full_state_dict()
    assert all(torch.equal(start[k], v) for k, v in plain.full_state_dict().items())
    for expected_lr in EXPECTED_LRS:
        before = offloaded.full_state_dict()
        stats, reference = offloaded.update(batch()), plain.update(batch())
        assert stats["lr"] == pytest.approx(expected_lr) and reference["lr"] == stats["lr"]
        assert group["lr"] == pytest.approx(expected_lr)  # what the next CPU Adam step uses
        for k in ("grad_norm", "pg_loss"):
            assert math.isfinite(stats[k]) and stats[k] != 0, (k, stats[k])
        assert stats["grad_norm"] == pytest.approx(reference["grad_norm"], rel=1e-4)
        after = offloaded.full_state_dict()
        assert not torch.equal(_flat(after), _flat(before))

    # After three steps the weights are the client AdamW's to float rounding (about 2e-7 here);
    # a lost weight decay, or eps 1e-6 for 1e-8, puts them 5e-3 or more apart.
    moved, expected = _flat(after) - _flat(start), _flat(plain.full_state_dict()) - _flat(start)
    assert torch.allclose(moved, expected, atol=1e-5), (moved - expected).abs().max()
    assert torch.nn.functional.cosine_similarity(moved, expected, dim=0) > 0.9999

    offloaded.save(str(tmp_path / "ck"), {"step": 3})
    resumed = make_learner(model_dir, zero=zero, offload_optimizer=True, **fields)
    assert resumed.load(str(tmp_path / "ck"))["step"] == 3
    assert offloaded.update(batch())["lr"] == resumed.update(batch())["lr"] == LR
    after, restored = offloaded.full_state_dict(), resumed.full_state_dict()
    assert all(torch.equal(after[k], restored[k]) for k in after)


def _partition_state(model) -> list[tuple]:
    from deepspeed.runtime.zero.partition_parameters import ZeroParamStatus

    return [
        (
            name,
            hasattr(p, "ds_id"),
            getattr(p, "ds_status", None) == ZeroParamStatus.NOT_AVAILABLE,
            p.numel(),
            getattr(p, "ds_numel", None),
            p.ds_tensor.numel() if hasattr(p, "ds_tensor") else None,  # this rank's partition
        )
        for name, p in model.named_parameters()
    ]


@pytest.mark.parametrize("zero", [2, 3])
def test_zero3_builds_the_model_partitioned_and_only_while_the_learner_loads(
    model_dir,  # noqa: F811
    zero,
    monkeypatch,
):
    """What DeepSpeed receives: under ZeRO-3 every parameter is already partitioned (a DeepSpeed
    id, not available, no local data, its full size known), so the model was never built whole;
    under ZeRO-2 it is whole. The ZeRO-3 switch is off again once the learner is built."""
    import deepspeed
    from transformers.integrations import is_deepspeed_zero3_enabled

    real, seen = deepspeed.initialize, {}

    def spy(model, config, **kwargs):
        seen.update(params=_partition_state(model), zero3=is_deepspeed_zero3_enabled())
        return real(model=model, config=config, **kwargs)

    monkeypatch.setattr(deepspeed, "initialize", spy)
    learner = make_learner(model_dir, zero=zero)
    full = {n: p.numel() for n, p in _plain_model(model_dir).named_parameters()}
    assert len(full) == 21
    if zero == 3:
        assert seen["zero3"] is True
        # One rank: its partition is the whole parameter, held apart from the emptied `data`.
        assert seen["params"] == [(n, True, True, 0, full[n], full[n]) for n in full]
    else:
        assert seen["zero3"] is False
        assert seen["params"] == [(n, False, False, full[n], None, None) for n in full]
    assert not is_deepspeed_zero3_enabled()
    # A later load in this process (the reference model, say) is plain and whole.
    assert _partition_state(_plain_model(model_dir)) == [
        (n, False, False, full[n], None, None) for n in full
    ]
    assert learner.engine.zero_optimization_stage() == zero


def test_a_failed_zero3_load_leaves_later_loads_whole(tmp_path):
    """A ZeRO-3 load that fails, its traceback (and the learner's frame) still held, leaves no
    ZeRO-3 switch behind for the loads that follow."""
    from transformers.integrations import is_deepspeed_zero3_enabled

    with pytest.raises(OSError) as failed:
        make_learner(str(tmp_path / "no-model"), zero=3)
    assert failed.traceback and not is_deepspeed_zero3_enabled()


def test_a_zero3_learner_loaded_partitioned_holds_the_checkpoint(model_dir):  # noqa: F811
    """The partitioned load lost nothing: the learner's log-probs are the plainly loaded model's,
    and the export is the checkpoint on disk, tensor for tensor."""
    from safetensors.torch import load_file

    from rlmr.training.logprobs import sequence_token_logprobs

    learner = make_learner(model_dir, zero=3)
    tb = tokens()
    with torch.no_grad():
        expected, _ = sequence_token_logprobs(
            _plain_model(model_dir), tb.input_ids, tb.attention_mask
        )
    assert torch.allclose(learner.logprobs(tb), expected * tb.response_mask, atol=1e-6)
    on_disk = load_file(str(Path(model_dir) / "model.safetensors"))
    exported = learner.full_state_dict()
    assert exported.keys() == on_disk.keys()
    assert all(torch.equal(exported[k], on_disk[k]) for k in on_disk)


def test_zero3_without_accelerate_is_refused_with_the_reason(
    model_dir,  # noqa: F811
    recorded_deepspeed,  # noqa: F811
    monkeypatch,
):
    """transformers' HfDeepSpeedConfig, which switches `from_pretrained` to the partitioned
    load, needs accelerate: its absence is named, not reported as a missing distribution."""
    import importlib.util

    from rlmr.config import AlgoConfig
    from rlmr.training.learner import PolicyLearner, RankInfo

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == "accelerate" else find_spec(name, *args),
    )
    with pytest.raises(ImportError, match=r"^learner.zero_stage 3 loads the model partitioned "):
        PolicyLearner(
            model_dir,
            "float32",
            LearnerConfig(zero_stage=3),
            AlgoConfig(),
            RankInfo(0, 1, "cpu"),
            4,
        )
    assert "model" not in recorded_deepspeed

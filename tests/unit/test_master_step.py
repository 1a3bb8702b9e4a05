"""The bf16 learner's optimizer step a slice of parameters at a time (`rlmr.training.master_step`):
the weights, the fp32 masters and the gradient norm are bit for bit those of DeepSpeed's own step,
with the gradient clip acting, while no more than a slice of fp32 gradients exists at once."""

from __future__ import annotations

import pytest
import torch

from rlmr.training import master_step
from tests.fakes import tiny_cache  # noqa: F401 (fixture)
from tests.unit import test_learner
from tests.unit.test_learner import batch, make_learner

# test_learner's fixtures: its tiny model, and DeepSpeed's one-rank process group in this process
model_dir = test_learner.model_dir
one_rank_process_group = test_learner.one_rank_process_group


def _masters(learner):
    return [p for g in learner.optimizer.optimizer.param_groups for p in g["params"]]


def test_the_sliced_step_is_deepspeed_s_step_bit_for_bit(model_dir, monkeypatch):
    monkeypatch.setattr(master_step, "SLICE_BYTES", 8192)  # several slices on the tiny model
    kw = dict(micro=2, lr=1e-3, dtype="bfloat16", grad_clip=0.05)
    sliced, theirs = make_learner(model_dir, **kw), make_learner(model_dir, **kw)
    assert "step" in vars(sliced.optimizer)  # installed on the wrapper
    del theirs.optimizer.step  # DeepSpeed's own

    seen = []
    inner = sliced.optimizer.optimizer
    step = inner.step

    def counted(*args, **kwargs):
        seen.append(sum(p.grad is not None for p in _masters(sliced)))
        return step(*args, **kwargs)

    inner.step = counted
    for learner in (sliced, theirs):  # one weight without a gradient: DeepSpeed steps it on zeros
        _drop_last_gradient(learner)
    for _ in range(2):
        got, want = sliced.update(batch()), theirs.update(batch())
        assert got["grad_norm"] == want["grad_norm"] > 0.05  # the clip acts
    total = len(_masters(sliced))
    assert len(seen) > 2 and max(seen) < total and sum(seen) == 2 * total
    for a, b in zip(_masters(sliced), _masters(theirs), strict=True):
        assert torch.equal(a, b)
    for a, b in zip(
        sliced.engine.module.parameters(), theirs.engine.module.parameters(), strict=True
    ):
        assert a.dtype == torch.bfloat16 and torch.equal(a, b)
    assert not all(torch.equal(a, b) for a, b in zip(_masters(sliced), _before(model_dir)))


def _drop_last_gradient(learner):
    engine_step = learner.engine.step
    last = list(learner.engine.module.parameters())[-1]

    def step(*args, **kwargs):
        last.grad = None
        return engine_step(*args, **kwargs)

    learner.engine.step = step


def _before(directory):
    fresh = make_learner(directory, micro=2, dtype="bfloat16")
    return [p.detach().clone() for p in _masters(fresh)]


def test_a_non_finite_gradient_skips_the_step_and_touches_nothing(model_dir):
    learner = make_learner(model_dir, micro=2, lr=1e-3, dtype="bfloat16")
    before = [p.detach().clone() for p in _masters(learner)]
    weight = next(learner.engine.module.parameters())
    hook = weight.register_hook(lambda g: torch.full_like(g, float("inf")))
    stats = learner.update(batch())
    hook.remove()
    assert stats["skipped_update_frac"] == 1.0
    assert all(torch.equal(a, b) for a, b in zip(_masters(learner), before))


def test_only_deepspeed_s_unfused_half_precision_wrapper_gets_the_sliced_step():
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))])
    assert not master_step.install(optimizer) and "step" not in vars(optimizer)


def test_a_wrapper_without_a_part_the_step_reads_keeps_deepspeed_s_step(model_dir, monkeypatch):
    from deepspeed.runtime.fp16.unfused_optimizer import FP16_UnfusedOptimizer

    monkeypatch.delattr(FP16_UnfusedOptimizer, "_skip_invalid_grad_norm")
    learner = make_learner(model_dir, micro=2, dtype="bfloat16")
    assert type(learner.optimizer) is FP16_UnfusedOptimizer
    assert "step" not in vars(learner.optimizer)


@pytest.mark.parametrize("budget, runs", [(8, [[0, 1], [2], [3, 4]]), (100, [[0, 1, 2, 3, 4]])])
def test_slices_hold_about_the_budget_and_a_large_weight_alone(budget, runs):
    sizes = [1, 1, 3, 1, 1]  # fp32 elements: 4 bytes each
    pairs = [(torch.zeros(n), i) for i, n in enumerate(sizes)]
    assert [[i for _, i in run] for run in master_step.slices(pairs, budget)] == runs

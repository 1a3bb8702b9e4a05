"""ZeRO-3 over two ranks, partitioned at load, with optimizer offload: the unit tests' one rank
holds every partition whole, and its rank 0 reads the whole checkpoint, so they cannot see a
rank that loads nothing from disk (transformers reads the checkpoint on rank 0 only and scatters
it) or a partition that is half a parameter.

Two DeepSpeed ranks (gloo, two processes) build the tiny model partitioned, each holding half of
every parameter; both compute the plainly loaded model's log-probs, rank 0 exports the checkpoint
on disk, and one update with DeepSpeedCPUAdam on half a batch each moves the weights as one rank
without ZeRO and with the client AdamW does on the whole batch.
"""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import numpy as np
import pytest

from tests.fakes import tiny_cache  # noqa: F401 (fixture)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _rank(model_dir: str, rank: int, world: int, zero: int, port: int, cache: str, out) -> None:
    import os

    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK="0",
        DS_ACCELERATOR="cpu",
        RLMR_CACHE=cache,
    )
    import deepspeed

    from rlmr.config import AlgoConfig, LearnerConfig
    from rlmr.training.learner import PolicyLearner, RankInfo
    from tests.unit.test_learner import ADVANTAGES, batch, tokens

    real, loaded = deepspeed.initialize, {}

    def spy(model, config, **kwargs):  # what DeepSpeed receives: (local numel, partition numel)
        for n, p in model.named_parameters():
            loaded[n] = (p.numel(), p.ds_tensor.numel() if hasattr(p, "ds_tensor") else None)
        return real(model=model, config=config, **kwargs)

    deepspeed.initialize = spy
    cfg = {"zero_stage": zero, "offload_optimizer": zero > 0, "weight_decay": 0.5}
    learner = PolicyLearner(
        model_dir,
        "float32",
        LearnerConfig(lr=1e-2, micro_batch_size=1, grad_clip=1e6, backend="gloo", **cfg),
        AlgoConfig(),
        RankInfo(rank, world, "cpu"),
        samples_per_step=4,
        seed=0,
    )
    optimizer = type(learner.engine.basic_optimizer).__name__
    logprobs = learner.logprobs(tokens()).numpy()
    exported = learner.full_state_dict()
    stats = learner.update(batch(ADVANTAGES).split(world)[rank])
    after = learner.full_state_dict()
    # numpy, not tensors: a queue shares tensors through file descriptors the child closes on exit
    arrays = [
        None if d is None else {k: v.numpy().copy() for k, v in d.items()}
        for d in (exported, after)
    ]
    out.put((rank, optimizer, loaded, logprobs, stats["grad_norm"], *arrays))


def _run(model_dir: str, world: int, zero: int, cache: str) -> list:
    from tests.unit.test_learner import _free_port

    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    port = _free_port()
    procs = [
        ctx.Process(target=_rank, args=(model_dir, r, world, zero, port, cache, out))
        for r in range(world)
    ]
    for p in procs:
        p.start()
    results = sorted((out.get(timeout=600) for _ in procs), key=lambda r: r[0])
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return results


def test_two_zero3_ranks_load_partitioned_and_step_with_cpu_adam(tiny_cache):  # noqa: F811
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from rlmr.config import TinyModel
    from rlmr.engine.loading import resolve_model_dir
    from rlmr.training.logprobs import sequence_token_logprobs
    from tests.unit.test_learner import tokens

    source = TinyModel(hidden_size=32, intermediate_size=64, num_layers=2, num_heads=2, seed=3)
    model_dir = str(resolve_model_dir(source))
    on_disk = load_file(str(Path(model_dir) / "model.safetensors"))
    plain = AutoModelForCausalLM.from_pretrained(
        model_dir, dtype=torch.float32, local_files_only=True
    )
    tb = tokens()
    with torch.no_grad():
        expected, _ = sequence_token_logprobs(plain, tb.input_ids, tb.attention_mask)

    ((_, client, _, _, norm_one, _, one),) = _run(model_dir, 1, 0, str(tiny_cache))
    assert client == "AdamW"
    two = _run(model_dir, 2, 3, str(tiny_cache))
    for rank, optimizer, loaded, logprobs, norm, exported, after in two:
        assert optimizer == "DeepSpeedCPUAdam"
        # Built partitioned: no local data, half of each parameter (rounded up) on each rank.
        assert loaded == {n: (0, -(-p.numel() // 2)) for n, p in plain.named_parameters()}
        # rank 1 read no checkpoint; the learner computes the response columns only
        response = tb.response_mask.numpy()
        assert np.allclose(logprobs[response], expected.numpy()[response], atol=1e-6)
        assert norm == pytest.approx(norm_one, rel=1e-5)
        if rank == 0:
            assert exported.keys() == on_disk.keys()
            assert all(np.array_equal(exported[k], on_disk[k].numpy()) for k in on_disk)
            assert all(np.allclose(after[k], one[k], atol=1e-5) for k in one)
            assert not all(np.array_equal(after[k], exported[k]) for k in one)
        else:
            assert exported is None and after is None

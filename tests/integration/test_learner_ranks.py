"""The learner's loss is the token mean of the whole batch across data-parallel ranks too.

Two DeepSpeed ranks (gloo, two processes) each update on half of a batch whose
responses have different lengths; their gradient norm and the weights after
the step must equal those of one rank updating on the whole batch. A loss
normalised per rank (or a missing world-size factor) would differ.
"""

from __future__ import annotations

import multiprocessing as mp
import socket

import numpy as np
import pytest

from tests.fakes import tiny_cache  # noqa: F401 (fixture)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank(model_dir: str, rank: int, world: int, port: int, cache: str, out) -> None:
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
    from rlmr.config import AlgoConfig, LearnerConfig
    from rlmr.training.learner import PolicyLearner, RankInfo
    from tests.unit.test_learner import ADVANTAGES, batch

    learner = PolicyLearner(
        model_dir,
        "float32",
        LearnerConfig(lr=1e-2, micro_batch_size=1, grad_clip=1e6, backend="gloo"),
        AlgoConfig(),
        RankInfo(rank, world, "cpu"),
        samples_per_step=4,
        seed=0,
    )
    shard = batch(ADVANTAGES).split(world)[rank]
    stats = learner.update(shard)
    # numpy, not tensors: a queue shares tensors through file descriptors the child closes on exit
    state = {k: v.detach().numpy().copy() for k, v in learner.engine.module.state_dict().items()}
    out.put((rank, stats["grad_norm"], state))


def _run(model_dir: str, world: int, cache: str) -> list:
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    port = _port()
    procs = [
        ctx.Process(target=_rank, args=(model_dir, r, world, port, cache, out))
        for r in range(world)
    ]
    for p in procs:
        p.start()
    results = sorted(out.get(timeout=600) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return results


def test_two_ranks_update_exactly_like_one(tiny_cache):  # noqa: F811
    from rlmr.config import TinyModel
    from rlmr.engine.loading import resolve_model_dir

    source = TinyModel(hidden_size=32, intermediate_size=64, num_layers=2, num_heads=2, seed=3)
    model_dir = str(resolve_model_dir(source))
    ((_, norm_one, one),) = _run(model_dir, 1, str(tiny_cache))
    two = _run(model_dir, 2, str(tiny_cache))
    assert [r[1] for r in two] == pytest.approx([norm_one, norm_one], rel=1e-5)
    for _, _, state in two:  # both ranks hold the same weights, equal to the one-rank update
        assert all(np.allclose(one[k], state[k], atol=1e-5) for k in one)

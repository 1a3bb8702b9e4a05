"""GPU weight sync: an NCCL group between learner rank 0 (source) and every vLLM worker, and the
broadcast protocol.

Follows vLLM's documented RLHF pattern: a `StatelessProcessGroup` (outside
torch.distributed's global group, so it never collides with DeepSpeed's) with
a `PyNcclCommunicator` on top. Rank 0 is the learner; the workers of rollout
engine `e` take ranks `1 + e * tp .. (e + 1) * tp`. Each sync sends the
metadata list first (`weight_metas`), then one broadcast per parameter in
that order; each vLLM worker receives into a fresh buffer and loads it
(`rlmr.engine.vllm_worker.WeightSyncExtension.rlmr_receive_weights`).

UNTESTED ON GPUs here: the NCCL group needs vLLM and CUDA. The protocol
(order, names, dtypes, shapes, what gets loaded) is tested on CPU with an
in-process channel standing in for the communicator.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import nullcontext

import torch

WeightMeta = tuple[str, str, tuple[int, ...]]  # (HF parameter name, torch dtype name, full shape)


def create_weight_group(master_address: str, master_port: int, rank: int, world_size: int, device):
    """The NCCL communicator for weight sync (vLLM's StatelessProcessGroup + PyNcclCommunicator)."""
    from vllm.distributed.device_communicators.pynccl import PyNcclCommunicator
    from vllm.distributed.utils import StatelessProcessGroup

    pg = StatelessProcessGroup.create(
        host=master_address, port=master_port, rank=rank, world_size=world_size
    )
    return PyNcclCommunicator(pg, device=device)


def _stream():
    return torch.cuda.current_stream() if torch.cuda.is_available() else None


def weight_metas(named_params: Iterable[tuple[str, torch.Tensor]]) -> list[WeightMeta]:
    """What the receivers allocate, in broadcast order. ZeRO-3 partitioned params report their full
    shape."""
    metas = []
    for name, p in named_params:
        shape = tuple(getattr(p, "ds_shape", None) or p.shape)
        metas.append((name, str(p.dtype).removeprefix("torch."), shape))
    return metas


def broadcast_parameters(
    named_params: Iterable[tuple[str, torch.Tensor]],
    group,
    is_source: bool,
    gather: Callable[[torch.Tensor], object] | None = None,
) -> int:
    """Send every parameter, in `weight_metas` order, from the source rank.

    All learner ranks call this (a ZeRO-3 `gather` is collective among them); only
    the source holds `group` and broadcasts. Returns how many tensors were sent.
    """
    count = 0
    for _, p in named_params:
        with gather(p) if gather is not None else nullcontext():
            if is_source:
                group.broadcast(p.data, src=0, stream=_stream())
                count += 1
    return count


def receive_parameters(
    metas: list[WeightMeta], group, device, load: Callable[[list[tuple[str, torch.Tensor]]], object]
) -> int:
    """Receive each broadcast into a fresh buffer and hand it to `load` (vLLM's
    `model.load_weights`)."""
    received = 0
    for name, dtype_name, shape in metas:
        buf = torch.empty(shape, dtype=getattr(torch, dtype_name), device=device)
        group.broadcast(buf, src=0, stream=_stream())
        load([(name, buf)])
        received += 1
    return received

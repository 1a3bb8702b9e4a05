"""Methods vLLM mixes into its GPU workers (`worker_extension_cls`), for weight sync from the
learner.

UNTESTED AGAINST A REAL vLLM here (no GPU): follows vLLM's RLHF example,
where an extension class reaches the model through `self.model_runner.model`
and loads weights with its `load_weights(weights=[(name, tensor)])`. Two
paths, both through `LLM.collective_rpc`: `rlmr_load_weights` (tensors pickled
through the RPC; small models) and `rlmr_init_weight_group` +
`rlmr_receive_weights` (NCCL broadcast from learner rank 0, the GPU default;
see `rlmr.engine.weight_group`).
Tests call these methods on a fake worker object.
"""

from __future__ import annotations

import inspect


class WeightSyncExtension:
    """Mixed into each vLLM worker; `self.model_runner` and `self.device` come from the worker."""

    def rlmr_load_weights(self, payload: bytes) -> int:
        """Load a safetensors payload of HF-named tensors into the worker's model; returns how many
        this worker loaded (an empty load is an error, never a silent success).

        Through vLLM's `model_runner.reload_weights(weights_iterator=...)` where it exists (vLLM
        0.32+): it reloads in checkpoint format and re-applies the layout transforms the model
        went through after loading. vLLM's CPU build repacks every linear layer, after which
        `model.load_weights` fails or, for some layers, loads into a copy nobody reads (measured
        by tests/vllm_lane). A fused layer (q/k/v) must arrive whole: send the full state.
        """
        from safetensors.torch import load

        device = getattr(self, "device", None)
        weights = [(n, t.to(device) if device is not None else t) for n, t in load(payload).items()]
        if not weights:
            raise ValueError("rlmr_load_weights: no tensors arrived")
        reload = getattr(self.model_runner, "reload_weights", None)
        if reload is not None and "weights_iterator" in inspect.signature(reload).parameters:
            reload(weights_iterator=iter(weights), is_checkpoint_format=True)
            return len(weights)
        loaded = 0
        for name, tensor in weights:  # one at a time: the count is what the model took
            self.model_runner.model.load_weights(weights=[(name, tensor)])
            loaded += 1
        return loaded

    def rlmr_set_seed(self, seed: int) -> int:
        """Seed this worker's generators once for a batch of requests (instead of one generator per
        request, which vLLM samples on a slower path)."""
        import random

        import torch

        random.seed(seed)
        torch.manual_seed(seed)  # every device's default generator, CUDA included
        return seed

    def rlmr_init_weight_group(
        self, master_address: str, master_port: int, rank_offset: int, world_size: int
    ) -> int:
        """Join the NCCL weight-sync group as rank `rank_offset` + this worker's rank in its
        engine."""
        from vllm.distributed.parallel_state import get_world_group

        from rlmr.engine.weight_group import create_weight_group

        rank = rank_offset + get_world_group().rank
        self._rlmr_weight_group = create_weight_group(
            master_address, master_port, rank, world_size, self.device
        )
        return rank

    def rlmr_receive_weights(self, metas) -> int:
        """Receive the learner's broadcast of every `(name, dtype, shape)` in `metas`, loading each
        tensor."""
        from rlmr.engine.weight_group import receive_parameters

        model = self.model_runner.model
        return receive_parameters(
            metas,
            self._rlmr_weight_group,
            self.device,
            lambda weights: model.load_weights(weights=weights),
        )

    def rlmr_weight_checksum(self) -> float:
        """Sum of all parameters, to check that a sync arrived (compare with the learner's)."""
        return float(
            sum(
                p.detach().float().sum().item()
                for _, p in self.model_runner.model.named_parameters()
            )
        )

"""Methods vLLM mixes into its GPU workers (`worker_extension_cls`), for weight sync from the learner.

UNTESTED AGAINST A REAL vLLM here (no GPU): follows vLLM's RLHF example,
where an extension class reaches the model through `self.model_runner.model`
and loads weights with its `load_weights(weights=[(name, tensor)])`. Called
through `LLM.collective_rpc("rlmr_load_weights", args=(named_tensors,))`.
Tests call these methods on a fake worker object.
"""

from __future__ import annotations


class WeightSyncExtension:
    """Mixed into each vLLM worker; `self.model_runner` and `self.device` come from the worker."""

    def rlmr_load_weights(self, named_tensors) -> int:
        """Load `(name, tensor)` pairs (HF parameter names) into the worker's model; returns how many."""
        device = getattr(self, "device", None)
        weights = [(name, t.to(device) if device is not None else t) for name, t in named_tensors]
        self.model_runner.model.load_weights(weights=weights)
        return len(weights)

    def rlmr_weight_checksum(self) -> float:
        """Sum of all parameters, to check that a sync arrived (compare with the learner's)."""
        return float(sum(p.detach().float().sum().item() for _, p in self.model_runner.model.named_parameters()))

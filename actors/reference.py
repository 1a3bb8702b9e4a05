"""ReferenceWorker: the frozen initial policy, returning per-token log-probs for KL.

Created only when `algo.kl.beta > 0`. It scores the padded sequences with the
learner's own log-prob function, so the KL term compares like with like, in
forwards of `algo.kl.reference_micro_batch` rows. On CPU its weights are
file-backed and handed back after every call (`algo.kl.reference_in_file`,
`rlmr.engine.file_weights`).
"""

from __future__ import annotations

import ray
import torch

from actors.process import releases_memory, setup_process
from rlmr.config import RLMRConfig
from rlmr.core.records import TokenBatch


class ReferenceCalls:
    """The reference role's call, on `self.reference_model` (a reference worker's, or the one the
    colocated learner loads beside the policy: `actors.colocated`)."""

    def load_reference(self, cfg: RLMRConfig, device: str) -> None:
        from rlmr.engine.file_weights import FileBackedWeights, file_backed_dir
        from rlmr.engine.loading import cache_root, load_model_and_tokenizer

        self.reference_device = torch.device("cuda", 0) if device == "cuda" else torch.device("cpu")
        self.reference_model, _ = load_model_and_tokenizer(
            cfg.model.source, cfg.model.dtype, str(self.reference_device)
        )
        self.reference_model.requires_grad_(False)
        kl = cfg.algo.kl
        self.reference_micro_batch = kl.reference_micro_batch or cfg.learner.micro_batch_size
        # On CPU the weights live in a file mapping between calls (the page cache, not this
        # process, holds them while the learner peaks).
        self.reference_weights = None
        if self.reference_device.type == "cpu" and kl.reference_in_file:
            folder = file_backed_dir(cache_root())
            if folder is not None:
                self.reference_weights = FileBackedWeights(self.reference_model, folder)

    @releases_memory
    def reference_logprobs(self, tokens: TokenBatch) -> torch.Tensor:
        """`[B, T-1]` log-probs of every response token, 0 elsewhere."""
        from rlmr.training.logprobs import response_logprobs

        try:
            return response_logprobs(
                self.reference_model, tokens, self.reference_micro_batch, self.reference_device
            )
        finally:
            if self.reference_weights is not None:
                self.reference_weights.release()


@ray.remote
class ReferenceWorker(ReferenceCalls):
    def __init__(self, cfg: RLMRConfig, device: str):
        setup_process(device)
        self.load_reference(cfg, device)

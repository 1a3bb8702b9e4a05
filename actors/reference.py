"""ReferenceWorker: the frozen initial policy, returning per-token log-probs for KL.

Created only when `algo.kl.beta > 0`. It scores the padded sequences with the
learner's own log-prob function, so the KL term compares like with like.
"""

from __future__ import annotations

import ray
import torch

from actors.process import setup_process
from rlmr.config import RLMRConfig
from rlmr.core.records import TokenBatch


@ray.remote
class ReferenceWorker:
    def __init__(self, cfg: RLMRConfig, device: str):
        from rlmr.engine.loading import load_model_and_tokenizer

        setup_process(device)
        self.device = torch.device("cuda", 0) if device == "cuda" else torch.device("cpu")
        self.model, _ = load_model_and_tokenizer(
            cfg.model.source, cfg.model.dtype, str(self.device)
        )
        self.micro_batch = cfg.learner.micro_batch_size

    def logprobs(self, tokens: TokenBatch) -> torch.Tensor:
        """`[B, T-1]` log-probs of every response token, 0 elsewhere."""
        from rlmr.training.logprobs import response_logprobs

        return response_logprobs(self.model, tokens, self.micro_batch, self.device)

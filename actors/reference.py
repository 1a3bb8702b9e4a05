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

    @torch.no_grad()
    def logprobs(self, tokens: TokenBatch) -> torch.Tensor:
        """`[B, T-1]` log-probs of every target token, 0 outside the responses."""
        from rlmr.training.learner import sequence_token_logprobs

        out = []
        for start in range(0, len(tokens), self.micro_batch):
            mb = tokens.select(slice(start, start + self.micro_batch))
            lp, _ = sequence_token_logprobs(
                self.model, mb.input_ids.to(self.device), mb.attention_mask.to(self.device)
            )
            out.append((lp.float() * mb.response_mask.to(self.device)).cpu())
        return torch.cat(out)

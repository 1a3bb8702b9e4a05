"""The KV cache of a prefix shared by several rows, on transformers' cache classes.

`shared_prefix_cache`: the cache of one forward over each distinct prefix (a prompt the n samples
of a group share), copied to the rows that continue it: the HF engine's prefill and the learner's
KV-cache path (`rlmr.training.logprobs`) compute a shared prompt once.
"""

from __future__ import annotations

import torch


def shared_prefix_cache(model, rows: torch.Tensor, **heads) -> dict:
    """The model's KV cache over `heads` (its inputs, one row per distinct prefix), copied to the
    rows that share each prefix (`rows[i]`: the head row `i` continues), as the keyword a forward
    or `generate` goes on from (`cache` on transformers 5, `past_key_values` on 4). The output
    layer runs on the last position only: a prefix's logits are never read."""
    out = model(**heads, use_cache=True, logits_to_keep=1)
    name = "cache" if hasattr(out, "cache") else "past_key_values"
    cache = getattr(out, name)
    cache.batch_select_indices(rows)
    return {name: cache}

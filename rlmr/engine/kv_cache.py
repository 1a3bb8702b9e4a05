"""KV caches for decoding and for a shared prompt, on transformers' cache classes.

- `shared_prefix_cache`: the cache of one forward over each distinct prefix (a prompt the n
  samples of a group share), copied to the rows that continue it: the HF engine's prefill and the
  learner's KV-cache path (`rlmr.training.logprobs`) compute a shared prompt once.
- `static_cache`: a cache allocated once for a whole `generate` call and written in place, seeded
  with a shared prefix's cache, instead of one that concatenates every layer's keys and values at
  every decoding step.
"""

from __future__ import annotations

import inspect

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


def static_cache(model, length: int, prefill: dict) -> dict:
    """A KV cache allocated once for `length` positions (transformers' `StaticCache`, written in
    place) for `generate` to decode into, holding `prefill`'s cache (a `shared_prefix_cache`)
    when there is one: a growing cache concatenates every layer's keys and values at every
    decoding step. `prefill` itself when some layer of the model is not a plain full-attention
    layer (sliding windows, recurrent state: the static layers of those are not written this
    way)."""
    from transformers import StaticCache
    from transformers.cache_utils import StaticLayer

    cache = StaticCache(config=model.config, max_cache_len=length)
    if not all(type(layer) is StaticLayer for layer in cache.layers):
        return prefill
    if not prefill:
        params = inspect.signature(model.forward).parameters
        return {"cache" if "cache" in params else "past_key_values": cache}
    (name, grown), *_ = prefill.items()
    for layer, source in zip(cache.layers, grown.layers, strict=True):
        layer.update(source.keys, source.values)
    return {name: cache}

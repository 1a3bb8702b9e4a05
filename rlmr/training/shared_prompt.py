"""One forward for a micro-batch whose rows share prompts: every distinct prompt and every row's
continuation flattened into one sequence, so the model's matrix products run once over all their
tokens, with attention computed per part (each prompt causally over itself; each row over its
prompt's keys and causally over its own).

This is the computation `logprobs.shared_prompt_cache` does (a prompt shared by the n samples of a
group runs through the model once, its keys and values indexed out to the rows; gradients sum
back through the indexing), without its price on a CPU: there the prompts' forward is a separate
pass of small matrix products (one row per prompt token: 39 rows at 28-43 GFLOP/s on the
project's 2-core machine, against 87-112 for the continuations' few hundred rows), then a second
pass for the continuations, and the backward adds two contributions into every weight gradient.
Flattened, there is one product per layer over all the tokens.

The attention runs through transformers' attention-function interface: for the length of the
call the model's attention implementation is `rlmr_shared_prompt` (registered here), which
receives the flattened queries, keys and values with the layout (`SharedLayout`) passed down as a
keyword, splits them into the prompts' part and the rows' part and calls transformers' own SDPA
attention on each. The flattened sequence carries each token's position in its own row
(`position_ids`), so rotary embeddings see exactly the positions of the whole computation.

Used for the models whose attention layers pass keywords through to the attention function and
take `position_ids` (`PACKABLE_MODEL_TYPES`), with SDPA or eager attention, no sliding window
shorter than the rows (Mistral's default window is 4096 tokens), and under gradient checkpointing
only when the checkpointed layers recompute under the forward's settings (`rlmr.training.recompute`:
the backward recomputes a layer after the call has put the attention setting back); any other
model computes every row whole or through the KV cache.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from rlmr.training.recompute import forward_setting, recomputes_in_forward_settings

ATTENTION_NAME = "rlmr_shared_prompt"
# Decoder-only models whose attention layers take `position_ids` and hand every keyword of the
# forward on to the attention function (transformers 5's Llama family).
PACKABLE_MODEL_TYPES = frozenset({"llama", "mistral", "qwen2", "qwen3"})


@dataclass(frozen=True)
class SharedLayout:
    """Where each part lies in the flattened sequence: `heads` prompts of `prefix` tokens first,
    then `rows` continuations of `rest` tokens each; `row_head[r]` is the prompt row `r`
    continues; `rest_mask` is the rows' attention mask (`[rows, 1, rest, prefix + rest]`, True
    where a query may read a key)."""

    heads: int
    prefix: int
    rows: int
    rest: int
    row_head: torch.Tensor
    rest_mask: torch.Tensor


def _split(x: torch.Tensor, layout: SharedLayout) -> tuple[torch.Tensor, torch.Tensor]:
    """`[1, H, L, d]` -> the prompts' `[heads, H, prefix, d]` and the rows' `[rows, H, rest, d]`."""
    h, d = x.shape[1], x.shape[-1]
    cut = layout.heads * layout.prefix
    head_part = x[0, :, :cut].reshape(h, layout.heads, layout.prefix, d).transpose(0, 1)
    row_part = x[0, :, cut:].reshape(h, layout.rows, layout.rest, d).transpose(0, 1)
    return head_part, row_part


def shared_prompt_attention(module, query, key, value, attention_mask, **kwargs):
    """The attention function transformers calls in every layer while a shared-prompt forward
    runs: `query` `[1, H, L, d]`, `key`/`value` `[1, H_kv, L, d]` over the flattened sequence.
    Returns `[1, L, H, d]` and no weights, as transformers' own functions do."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    layout = kwargs.pop("rlmr_layout", None)
    if layout is None:
        raise RuntimeError(
            f"{ATTENTION_NAME}: called without its layout keyword: this model's attention layers "
            "do not pass the forward's keywords on to the attention function"
        )
    kwargs.pop("is_causal", None)
    q_head, q_row = _split(query, layout)
    k_head, k_row = _split(key, layout)
    v_head, v_row = _split(value, layout)
    out_head, _ = sdpa_attention_forward(
        module, q_head, k_head, v_head, None, is_causal=True, **kwargs
    )
    # Each row reads its prompt's keys and values (indexed out: the gradient sums back), then its
    # own.
    k_full = torch.cat([k_head[layout.row_head], k_row], dim=2)
    v_full = torch.cat([v_head[layout.row_head], v_row], dim=2)
    out_row, _ = sdpa_attention_forward(
        module, q_row, k_full, v_full, layout.rest_mask, is_causal=False, **kwargs
    )
    out = torch.cat([out_head.flatten(0, 1), out_row.flatten(0, 1)])
    return out.unsqueeze(0), None


def _register() -> None:
    from transformers import AttentionInterface

    AttentionInterface.register(ATTENTION_NAME, shared_prompt_attention)


def _model_config(model):
    """The transformers config of `model` or of the model a DeepSpeed engine wraps (the engine's
    own `config` is DeepSpeed's)."""
    return getattr(getattr(model, "module", model), "config", None)


def packable(model) -> bool:
    """Whether `model` (or the DeepSpeed engine wrapping it) can run the flattened forward."""
    # Checkpointed layers recompute in the backward, after the attention setting is put back: they
    # must set it again (`rlmr.training.recompute`).
    if not recomputes_in_forward_settings(model):
        return False
    config = _model_config(model)
    if config is None or getattr(config, "model_type", None) not in PACKABLE_MODEL_TYPES:
        return False
    if getattr(config, "_attn_implementation", None) not in ("sdpa", "eager"):
        return False
    if getattr(config, "use_sliding_window", False):
        return False
    layer_types = getattr(config, "layer_types", None) or ()
    return all(t == "full_attention" for t in layer_types)


@contextlib.contextmanager
def _attention(config, name: str):
    before = config._attn_implementation
    config._attn_implementation = name
    try:
        yield
    finally:
        config._attn_implementation = before


def shared_heads(
    input_ids: torch.Tensor, attention_mask: torch.Tensor, length: int
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The distinct runs of the first `length` tokens (`[heads, length]`) and, per row, the run it
    continues; `None` when nothing is shared: `length < 1`, a row padded inside its first
    `length` tokens, or no run repeated. Both ways of computing a shared prompt once (this
    module's flattened forward, `logprobs.shared_prompt_cache`) start from it."""
    if length < 1 or not bool(attention_mask[:, :length].all()):
        return None
    heads, row_head = torch.unique(input_ids[:, :length], dim=0, return_inverse=True)
    if len(heads) == len(input_ids):
        return None
    return heads, row_head


def shared_prompt_logits(
    model, input_ids: torch.Tensor, attention_mask: torch.Tensor, length: int
) -> torch.Tensor | None:
    """The logits of positions `length..` of every row (`[B, T - length, V]`) from one flattened
    forward in which each distinct run of the first `length` tokens goes through the model once.
    `None` (the caller computes another way) when the model cannot run it (`packable`) or has a
    sliding window shorter than the rows, when no run repeats, when `length` leaves no prefix or
    no rest, or when a row is padded inside its first `length` tokens."""
    if not 1 <= length < input_ids.shape[1] or not packable(model):
        return None
    # A sliding window shorter than the rows would hide keys the flattened attention reads.
    window = getattr(_model_config(model), "sliding_window", None)
    if window is not None and window < input_ids.shape[1]:
        return None
    shared = shared_heads(input_ids, attention_mask, length)
    if shared is None:
        return None
    heads, row_head = shared
    rows, rest = input_ids.shape[0], input_ids.shape[1] - length
    device = input_ids.device
    flat = torch.cat([heads.reshape(-1), input_ids[:, length:].reshape(-1)]).unsqueeze(0)
    positions = torch.cat(
        [
            torch.arange(length, device=device).repeat(len(heads)),
            torch.arange(length, length + rest, device=device).repeat(rows),
        ]
    ).unsqueeze(0)
    # A row's queries read all of its prompt, then its own tokens causally, padding left out.
    causal = torch.ones(rest, rest, dtype=torch.bool, device=device).tril()
    own = causal & attention_mask[:, None, length:].bool()
    rest_mask = torch.cat(
        [torch.ones(rows, rest, length, dtype=torch.bool, device=device), own], dim=2
    )
    layout = SharedLayout(len(heads), length, rows, rest, row_head, rest_mask.unsqueeze(1))
    _register()
    config = _model_config(model)
    with forward_setting(lambda: _attention(config, ATTENTION_NAME)):
        out = model(
            input_ids=flat,
            position_ids=positions,
            use_cache=False,
            logits_to_keep=rows * rest,
            rlmr_layout=layout,
        )
    return out.logits.reshape(rows, rest, -1)

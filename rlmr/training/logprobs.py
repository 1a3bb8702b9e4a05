"""Log-probs of response tokens under a causal LM: the learner's (with gradients, in its update,
and without, as old log-probs) and the frozen reference model's.

Only the positions a loss reads are paid for: the output layer and the vocabulary softmax run from
the first response column on (`first_target`), and a prompt shared by several rows (the n samples
of a GRPO group) runs through the model once, in the forward and the backward: in one flattened
forward with the rows' continuations (`rlmr.training.shared_prompt`) on the models that can run
it, else as a KV cache indexed out to the rows (`shared_prompt_cache`).
"""

from __future__ import annotations

import contextlib

import torch

from rlmr.core.algo import entropy_from_logits
from rlmr.core.records import TokenBatch
from rlmr.engine.kv_cache import shared_prefix_cache
from rlmr.training.output_layer import chunked_token_logprobs, hidden_states_out, output_layer
from rlmr.training.recompute import checkpointing, forward_setting
from rlmr.training.shared_prompt import shared_heads, shared_prompt_logits


def sequence_token_logprobs(
    model,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    with_entropy: bool = False,
    first_target: int = 0,
):
    """Log-probs of each target token `input_ids[:, 1:]` (and optionally the entropy),
    `[B, T-1]`. With `first_target = c`, only target columns `c..` are computed (the model's
    output layer and the softmax over the vocabulary run on those positions alone) and the
    columns before `c` are 0: for the prompt part of a batch, which no loss reads."""
    # use_cache only decides whether a KV cache is built beside the logits: memory, not numbers.
    no_cache = {"use_cache": False}  # pragma: no mutate
    if first_target:
        no_cache["logits_to_keep"] = input_ids.shape[1] - first_target
    # On the models that allow it, the forward stops at the final hidden states and the output
    # layer runs in chunks of positions inside the log-prob (`rlmr.training.output_layer`).
    head = output_layer(model)
    hidden_only = hidden_states_out(head) if head is not None else contextlib.nullcontext()
    with training_attention(model, input_ids.shape), hidden_only:
        logits = shared_prompt_logits(model, input_ids, attention_mask, first_target)
        if logits is None:
            shared = shared_prompt_cache(model, input_ids, attention_mask, first_target)
            if shared:
                # The prompt's cache is read (and extended) whatever use_cache says; not returned.
                rest = input_ids[:, first_target:]
                logits = model(
                    input_ids=rest, attention_mask=attention_mask, **no_cache, **shared
                ).logits
            else:
                logits = model(
                    input_ids=input_ids, attention_mask=attention_mask, **no_cache
                ).logits
    targets = input_ids[:, first_target + 1 :]
    if head is not None:  # `logits` are the hidden states
        logp, ent = chunked_token_logprobs(logits[:, :-1], head.weight, targets, with_entropy)
        pad = (first_target, 0)
        logp = torch.nn.functional.pad(logp, pad)
        return logp, None if ent is None else torch.nn.functional.pad(ent, pad)
    logits = logits[:, :-1].float()
    logp = torch.gather(logits, -1, targets.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(
        logits, dim=-1
    )
    logp = torch.nn.functional.pad(logp, (first_target, 0))
    if not with_entropy:
        return logp, None
    with torch.no_grad():
        ent = torch.nn.functional.pad(entropy_from_logits(logits.detach()), (first_target, 0))
    return logp, ent


# The most memory the attention matrices of a whole forward may take for `training_attention` to
# compute them explicitly (saved for the backward, in every layer).
MATH_ATTENTION_BYTES = 512 * 2**20


def training_attention(model, shape: tuple[int, ...]):
    """The SDPA backend for a forward of `shape` (`[rows, width]`): PyTorch's math attention
    (explicit matrix products and softmax) for a bf16/fp16 model on CPU while autograd records,
    whenever every layer's attention matrices fit in `MATH_ATTENTION_BYTES`; else the default.

    PyTorch's CPU flash attention runs its backward as many small bf16 matrix products, each
    through oneDNN with an allocation: SmolLM2-135M's update of 16 rows x 114 tokens took 6.6 s
    with it against 4.2 s with math attention in a Ray actor on a 12-02 Xeon with AMX (4.3 against
    3.9 in a plain process; fp32 and forwards without a backward gain nothing, and keep flash:
    `bench/README.md`). Math attention keeps each layer's `rows x heads x width x width`
    probabilities for the backward, which is why long rows go back to flash."""
    params = getattr(model, "parameters", None)
    param = next(params(), None) if params else None
    if (
        param is None
        or param.device.type != "cpu"
        or param.dtype not in (torch.bfloat16, torch.float16)
        or not torch.is_grad_enabled()
    ):
        return contextlib.nullcontext()
    config = getattr(getattr(model, "module", model), "config", None)
    layers = getattr(config, "num_hidden_layers", 0) or 0
    heads = getattr(config, "num_attention_heads", 0) or 0
    rows, width = shape[0], shape[-1]
    if not layers or not heads or layers * rows * heads * width * width * 4 > MATH_ATTENTION_BYTES:
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    # A checkpointed layer recomputes in the backward with the same kernel (`recompute`).
    return forward_setting(lambda: sdpa_kernel(SDPBackend.MATH))


def shared_prompt_cache(
    model, input_ids: torch.Tensor, attention_mask: torch.Tensor, length: int
) -> dict:
    """The KV cache of the first `length` tokens of every row, computed once per distinct run of
    them and indexed out to the rows that share it: the n samples of a prompt then run their
    prompt through the model once instead of n times, in the forward and in the backward (the
    gradient of the shared rows sums through the indexing). `{}` (compute every row whole) when no
    run repeats, when a row is padded there, or when the model recomputes activations in the
    backward (gradient checkpointing builds no cache). The positions the model gives the rest
    (the cache's length onwards) are those the whole computation gives."""
    # A DeepSpeed engine passes the read on to the model it wraps.
    if checkpointing(model):
        return {}
    shared = shared_heads(input_ids, attention_mask, length)
    if shared is None:
        return {}
    heads, rows = shared
    return shared_prefix_cache(model, rows, input_ids=heads, attention_mask=torch.ones_like(heads))


def first_response_column(response_mask: torch.Tensor) -> int:
    """The first target column any row's response reaches (0 when there is none): the columns
    before it are prompt or padding in every row."""
    columns = response_mask.any(0).nonzero()
    return int(columns[0]) if len(columns) else 0


@torch.no_grad()
def response_logprobs(model, batch: TokenBatch, micro_batch: int, device) -> torch.Tensor:
    """`[B, T-1]` float32 log-probs of every response token on CPU, 0 elsewhere, in micro-batches
    (the learner's old log-probs, the reference model's)."""
    out = []
    for start in range(0, len(batch), micro_batch):
        mb = batch.select(slice(start, start + micro_batch))
        lp, _ = sequence_token_logprobs(
            model,
            mb.input_ids.to(device),
            mb.attention_mask.to(device),
            first_target=first_response_column(mb.response_mask),
        )
        out.append(lp.float().cpu() * mb.response_mask)
    return torch.cat(out)

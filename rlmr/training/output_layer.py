"""Token log-probs through the output layer in chunks of positions, without the logits tensor.

Taking log-probs from a model's logits holds `[positions, vocabulary]` tensors through the
backward: the logits, their fp32 copy (saved for the softmax's gradient), and in the backward the
softmax, the fp32 gradient and its cast. At 16 bytes a position and vocabulary entry
(`rlmr.config.memory.LOGIT_TRAIN_BYTES`) that is the largest activation of a learner micro-batch
on a large vocabulary: 8,192 positions of Qwen2.5 (152k entries) are 20 GB, more than the model's
layers keep. `chunked_token_logprobs` instead takes the final hidden states and the output
layer's weight, and computes the logits `chunk` positions at a time: in the forward for the
log-sum-exp, the target's log-prob and the entropy, and again in the backward for the gradient
(one more output-layer product per chunk, the trade Liger's fused linear cross-entropy makes).
It saves the hidden states, which the model keeps anyway, and one number per position.

The values are those of the logits path to rounding: the same bf16 (or fp32) product of each
position's hidden state with the weight, the softmax in fp32, the gradient cast to the weight's
dtype before the product back through the output layer. The weight's gradient is summed over
chunks in fp32.

`output_layer(model)` says whether a model may take this path: a Llama, Mistral or Qwen2/3
causal LM (their forward applies the output layer to the hidden states and nothing after it: no
logit scaling or soft-capping), a bias-free linear output layer, and the weight whole in this
process (not a ZeRO-3 partition, gathered only inside the layer's own call). With
`hidden_states_out(head)` the model's forward returns the hidden states where the logits were.

Measured (`python bench/output_layer.py`, SmolLM2 in bf16 on CPU, one forward and backward of 4
rows of about 1,000 tokens): the working memory above the model 4.4-4.7 GiB against 6.6-6.8 with
the logits, the same seconds to noise. At the main job's 4 x 96 tokens the logits are a small part
of a micro-batch and the update's peak did not move.
"""

from __future__ import annotations

import contextlib

import torch

from rlmr.config.memory import LOGIT_CHUNK_BYTES, OUTPUT_LAYER_MODEL_TYPES


def chunk_positions(vocab: int) -> int:
    """Positions per chunk for a vocabulary of `vocab` entries: `LOGIT_CHUNK_BYTES` of fp32 logits,
    682 positions of SmolLM2's 49k entries, 220 of Qwen2.5's 152k."""
    return max(1, LOGIT_CHUNK_BYTES // (4 * vocab))


def output_layer(model) -> torch.nn.Linear | None:
    """The model's output layer when `chunked_token_logprobs` may replace it (module docstring),
    else None. `model` may be a DeepSpeed engine (its `module` is the model)."""
    inner = getattr(model, "module", model)
    config = getattr(inner, "config", None)
    if getattr(config, "model_type", None) not in OUTPUT_LAYER_MODEL_TYPES:
        return None
    get = getattr(inner, "get_output_embeddings", None)
    head = get() if get is not None else None
    if type(head) is not torch.nn.Linear or head.bias is not None:
        return None
    if hasattr(head.weight, "ds_id"):  # a ZeRO-3 partition: whole only inside the layer's call
        return None
    return head


def _hidden(self, hidden_states: torch.Tensor) -> torch.Tensor:
    return hidden_states


@contextlib.contextmanager
def hidden_states_out(head: torch.nn.Linear):
    """Inside, `head` returns its input: the model's `logits` are its final hidden states (of the
    positions it keeps). A forward the layer had of its own (the HF engine's packed kernel,
    `rlmr.engine.cpu_linear.pack_linears`, on a colocated learner's module) is put back after."""
    own = head.__dict__.get("forward")
    head.forward = _hidden.__get__(head)
    try:
        yield
    finally:
        if own is None:
            del head.forward
        else:
            head.forward = own


class _ChunkedTokenLogprobs(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, targets, chunk, with_entropy):
        logp = torch.empty(hidden.shape[0], dtype=torch.float32, device=hidden.device)
        entropy = torch.empty(
            hidden.shape[0] if with_entropy else 0, dtype=torch.float32, device=hidden.device
        )
        lse = torch.empty_like(logp)
        for start in range(0, hidden.shape[0], chunk):
            rows = slice(start, start + chunk)
            logits = torch.nn.functional.linear(hidden[rows], weight).float()
            lse[rows] = torch.logsumexp(logits, dim=-1)
            logp[rows] = logits.gather(-1, targets[rows, None]).squeeze(-1) - lse[rows]
            if with_entropy:  # H = lse - sum(p * logits)
                probs = logits.sub(lse[rows, None]).exp_()
                entropy[rows] = lse[rows] - probs.mul_(logits).sum(-1)
        ctx.save_for_backward(hidden, weight, targets, lse)
        ctx.chunk = chunk
        ctx.mark_non_differentiable(entropy)
        return logp, entropy

    @staticmethod
    def backward(ctx, grad_logp, _grad_entropy):
        hidden, weight, targets, lse = ctx.saved_tensors
        chunk = ctx.chunk
        grad_hidden = torch.empty_like(hidden) if ctx.needs_input_grad[0] else None
        grad_weight = None
        for start in range(0, hidden.shape[0], chunk):
            rows = slice(start, start + chunk)
            g = grad_logp[rows]
            # d logp / d logits = onehot(target) - softmax, times the incoming gradient.
            logits = torch.nn.functional.linear(hidden[rows], weight).float()
            grad_logits = logits.sub_(lse[rows, None]).exp_().mul_(-g[:, None])
            grad_logits.scatter_add_(-1, targets[rows, None], g[:, None])
            grad_logits = grad_logits.to(weight.dtype)
            if grad_hidden is not None:
                grad_hidden[rows] = grad_logits @ weight
            if ctx.needs_input_grad[1]:
                part = grad_logits.T @ hidden[rows]
                if grad_weight is None:  # summed over chunks in fp32 when there are several
                    grad_weight = part if hidden.shape[0] <= chunk else part.float()
                else:
                    grad_weight += part
        if grad_weight is not None:
            grad_weight = grad_weight.to(weight.dtype)
        return grad_hidden, grad_weight, None, None, None


def chunked_token_logprobs(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    with_entropy: bool = False,
    chunk: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probs (with gradients to `hidden` and `weight`) of `targets` and, with `with_entropy`,
    the entropy (a metric, no gradient) of the distributions `hidden @ weight.T` gives, both fp32
    of `targets`' shape. `hidden` is `[..., H]`, `weight` `[V, H]`, `targets` `[...]` token ids."""
    if chunk is None:
        chunk = chunk_positions(weight.shape[0])
    if chunk < 1:
        raise ValueError(f"chunk: must be >= 1, got {chunk}")
    shape = targets.shape
    logp, entropy = _ChunkedTokenLogprobs.apply(
        hidden.reshape(-1, hidden.shape[-1]), weight, targets.reshape(-1), chunk, with_entropy
    )
    return logp.reshape(shape), entropy.reshape(shape) if with_entropy else None

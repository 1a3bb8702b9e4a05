"""Activation checkpointing recomputes each layer under the settings its forward ran under
(`rlmr.training.recompute`): a bf16 model on CPU trains with it (math attention in the forward
and in the recomputation), and the flattened shared-prompt forward keeps its attention in the
backward, with log-probs and gradients those of the same model without checkpointing."""

from __future__ import annotations

import copy

import pytest
import torch
import transformers

from rlmr.config import ModelConfig
from rlmr.training import shared_prompt
from rlmr.training.logprobs import sequence_token_logprobs
from rlmr.training.recompute import (
    checkpointed_layers,
    decoder_layers,
    enable_checkpointing,
    recomputes_in_forward_settings,
)

LAYERS = 2


def _model(dtype):
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=300,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=LAYERS,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
    )
    model = transformers.LlamaForCausalLM(config).to(dtype)
    model.train()
    return model


def _batch():
    torch.manual_seed(1)
    ids = torch.randint(0, 300, (4, 20))
    ids[1, :8] = ids[0, :8]  # two prompts of 8 tokens, two rows each
    ids[3, :8] = ids[2, :8]
    mask = torch.ones_like(ids)
    mask[1, -3:] = 0  # a row that ended early
    return ids, mask


def _logprobs_and_grads(model):
    ids, mask = _batch()
    logp, _ = sequence_token_logprobs(model, ids, mask, with_entropy=True, first_target=8)
    (logp * torch.linspace(-1, 1, logp.shape[1])).sum().backward()
    grads = {n: p.grad.float().clone() for n, p in model.named_parameters()}
    return logp.detach(), grads


@pytest.fixture
def attention_calls(monkeypatch):
    calls = []
    inner = shared_prompt.shared_prompt_attention

    def counted(*args, **kwargs):
        calls.append(1)
        return inner(*args, **kwargs)

    monkeypatch.setattr(shared_prompt, "shared_prompt_attention", counted)
    return calls


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_checkpointed_layers_recompute_the_flattened_forward_with_the_same_numbers(
    dtype, attention_calls
):
    plain = _model(dtype)
    checkpointed = copy.deepcopy(plain)
    enable_checkpointing(checkpointed)
    assert recomputes_in_forward_settings(checkpointed)
    assert shared_prompt.packable(checkpointed)

    logp, grads = _logprobs_and_grads(plain)
    assert len(attention_calls) == LAYERS  # the flattened forward ran, once per layer
    del attention_calls[:]
    logp_ck, grads_ck = _logprobs_and_grads(checkpointed)
    # The forward, and every layer again in the backward, through the flattened attention.
    assert len(attention_calls) == 2 * LAYERS

    assert torch.equal(logp, logp_ck)
    for name, grad in grads.items():
        torch.testing.assert_close(grads_ck[name], grad, rtol=1e-5, atol=1e-6, msg=name)
    assert any(g.abs().sum() > 0 for g in grads.values())


def test_a_checkpoint_without_the_forward_settings_keeps_the_plain_forward():
    model = _model(torch.float32)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    assert not recomputes_in_forward_settings(model)
    assert not shared_prompt.packable(model)
    assert recomputes_in_forward_settings(_model(torch.float32))  # no checkpointing: nothing to do


def test_only_the_first_layers_recompute_with_the_same_numbers(attention_calls):
    """`model.checkpoint_layers`: the first layers recompute in the backward, the others keep their
    activations; log-probs and gradients stay those of the model without checkpointing."""
    plain = _model(torch.float32)
    partial = copy.deepcopy(plain)
    enable_checkpointing(partial, layers=1)
    assert checkpointed_layers(partial) == 1 and recomputes_in_forward_settings(partial)
    assert [b.gradient_checkpointing for b in decoder_layers(partial)] == [True, False]

    logp, grads = _logprobs_and_grads(plain)
    del attention_calls[:]
    logp_ck, grads_ck = _logprobs_and_grads(partial)
    assert len(attention_calls) == LAYERS + 1  # the forward, and the first layer again

    assert torch.equal(logp, logp_ck)
    for name, grad in grads.items():
        torch.testing.assert_close(grads_ck[name], grad, rtol=1e-5, atol=1e-6, msg=name)

    none = _model(torch.float32)
    enable_checkpointing(none, layers=0)
    assert checkpointed_layers(none) == 0
    enable_checkpointing(all_ := _model(torch.float32), layers=LAYERS)
    assert checkpointed_layers(all_) == LAYERS


def test_checkpoint_layers_needs_checkpointing_and_the_layers():
    with pytest.raises(ValueError, match="model.checkpoint_layers: 3, but the model has 2 decoder"):
        enable_checkpointing(_model(torch.float32), layers=LAYERS + 1)
    source = {"type": "tiny"}
    with pytest.raises(ValueError, match="checkpoint_layers: set, but gradient_checkpointing is"):
        ModelConfig(source=source, checkpoint_layers=1)
    assert ModelConfig(source=source, gradient_checkpointing=True, checkpoint_layers=0)

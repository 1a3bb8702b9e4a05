"""Log-probs through the output layer in chunks (`rlmr.training.output_layer`): the values and
gradients of the whole-logits computation, in any chunking; no `[positions, vocabulary]` tensor
kept for the backward; used only on the models where it is the same computation; the memory
arithmetic's budget for it."""

from __future__ import annotations

import pytest
import torch

from rlmr.training import logprobs as logprobs_module
from rlmr.training.logprobs import sequence_token_logprobs
from rlmr.training.output_layer import (
    chunk_positions,
    chunked_token_logprobs,
    hidden_states_out,
    output_layer,
)
from tests.unit.test_shared_prompt import rows, tiny

VOCAB, HIDDEN, POSITIONS = 53, 16, 11


def whole_logits(hidden, weight, targets):
    """The reference: every position's logits at once, log-softmax in fp32."""
    logits = (hidden @ weight.T).float()
    logp = torch.log_softmax(logits, -1)
    picked = logp.gather(-1, targets[:, None]).squeeze(-1)
    entropy = -(logp.exp() * logp).sum(-1)
    return picked, entropy.detach()


def leaves(dtype):
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(POSITIONS, HIDDEN, generator=g).to(dtype).requires_grad_()
    weight = torch.randn(VOCAB, HIDDEN, generator=g).to(dtype).requires_grad_()
    targets = torch.randint(0, VOCAB, (POSITIONS,), generator=g)
    upstream = torch.randn(POSITIONS, generator=g)  # a loss weighs each position differently
    return hidden, weight, targets, upstream


@pytest.mark.parametrize("chunk", [1, 4, POSITIONS, 100])
def test_chunks_give_the_log_probs_entropy_and_gradients_of_the_whole_logits(chunk):
    hidden, weight, targets, upstream = leaves(torch.float64)
    logp, entropy = chunked_token_logprobs(hidden, weight, targets, with_entropy=True, chunk=chunk)
    (logp * upstream).sum().backward()
    got = hidden.grad.clone(), weight.grad.clone()
    hidden.grad = weight.grad = None

    ref_logp, ref_entropy = whole_logits(hidden.double(), weight.double(), targets)
    (ref_logp * upstream).sum().backward()
    assert logp.dtype == torch.float32 and logp.shape == targets.shape
    torch.testing.assert_close(logp, ref_logp.float())
    torch.testing.assert_close(entropy, ref_entropy.float())
    assert not entropy.requires_grad
    torch.testing.assert_close(got[0], hidden.grad, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(got[1], weight.grad, rtol=1e-6, atol=1e-6)
    assert got[1].abs().sum() > 0 and got[0].abs().sum() > 0


def test_bf16_rounds_like_the_logits_path_and_sums_the_weight_gradient_over_chunks():
    hidden, weight, targets, upstream = leaves(torch.bfloat16)
    logp, _ = chunked_token_logprobs(hidden, weight, targets, chunk=3)
    (logp * upstream).sum().backward()
    got = hidden.grad.clone(), weight.grad.clone()
    hidden.grad = weight.grad = None
    ref_logp, _ = whole_logits(hidden, weight, targets)
    (ref_logp * upstream).sum().backward()
    assert got[0].dtype == got[1].dtype == torch.bfloat16
    torch.testing.assert_close(logp, ref_logp)  # the same bf16 products, the softmax in fp32
    torch.testing.assert_close(got[0], hidden.grad)
    torch.testing.assert_close(got[1], weight.grad, rtol=2e-2, atol=1e-2)


def test_without_entropy_none_is_returned_and_a_bad_chunk_is_refused():
    hidden, weight, targets, _ = leaves(torch.float32)
    logp, entropy = chunked_token_logprobs(hidden, weight, targets)
    assert entropy is None and logp.shape == targets.shape
    with pytest.raises(ValueError, match="chunk"):
        chunked_token_logprobs(hidden, weight, targets, chunk=0)
    assert chunk_positions(49152) == 682 and chunk_positions(152064) == 220
    assert chunk_positions(10**12) == 1


def _logits_path(monkeypatch):
    monkeypatch.setattr(logprobs_module, "output_layer", lambda model: None)


@pytest.mark.parametrize("tied", [False, True])
def test_a_model_s_log_probs_entropy_and_gradients_match_the_logits_path(monkeypatch, tied):
    ids, mask = rows()
    results = []
    for chunked in (True, False):
        model = tiny(tie_word_embeddings=tied)
        assert output_layer(model) is model.lm_head
        with monkeypatch.context() as m:
            if not chunked:
                _logits_path(m)
            logp, entropy = sequence_token_logprobs(
                model, ids, mask, with_entropy=True, first_target=5
            )
        logp.sum().backward()
        grads = [p.grad.clone() for p in model.parameters()]
        results.append((logp.detach(), entropy, grads))
    (logp_a, ent_a, grads_a), (logp_b, ent_b, grads_b) = results
    assert logp_a.shape == ids[:, 1:].shape and not logp_a[:, :5].any()
    torch.testing.assert_close(logp_a, logp_b)
    torch.testing.assert_close(ent_a, ent_b)
    for a, b in zip(grads_a, grads_b, strict=True):
        torch.testing.assert_close(a, b)
    # Afterwards the output layer computes logits again.
    assert model(input_ids=ids[:1]).logits.shape[-1] == model.config.vocab_size


def test_no_positions_by_vocabulary_tensor_is_kept_for_the_backward(monkeypatch):
    ids, mask = rows()
    model = tiny()
    vocab = model.config.vocab_size
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}

    def saved_logits(path_patch) -> int:
        kept = []

        def pack(t):
            if t.shape and t.shape[-1] == vocab and t.untyped_storage().data_ptr() not in weights:
                kept.append(t.numel())
            return t

        with monkeypatch.context() as m:
            path_patch(m)
            with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                sequence_token_logprobs(model, ids, mask, with_entropy=True, first_target=5)
        return sum(kept)

    assert saved_logits(lambda m: None) == 0
    assert saved_logits(_logits_path) >= ids.shape[0] * (ids.shape[1] - 6) * vocab


def test_only_models_whose_forward_ends_at_a_plain_output_layer_take_it():
    import transformers

    model = tiny()
    head = output_layer(model)
    assert head is model.lm_head

    class Engine:  # DeepSpeed's engine: the model is its `module`
        module = model

    assert output_layer(Engine()) is head
    biased = tiny()
    biased.lm_head = torch.nn.Linear(48, 97, bias=True)
    assert output_layer(biased) is None
    partitioned = tiny()
    partitioned.lm_head.weight.ds_id = 7  # a ZeRO-3 partition
    assert output_layer(partitioned) is None
    gemma = transformers.GemmaForCausalLM(  # soft-caps and scales its logits
        transformers.GemmaConfig(
            vocab_size=97,
            hidden_size=48,
            intermediate_size=96,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=1,
            head_dim=24,
        )
    )
    assert output_layer(gemma) is None
    with hidden_states_out(head):
        out = model(input_ids=torch.tensor([[3, 4, 5]])).logits
    assert out.shape == (1, 3, 48)
    assert model(input_ids=torch.tensor([[3, 4, 5]])).logits.shape == (1, 3, 97)


def test_a_forward_the_output_layer_had_of_its_own_is_put_back():
    # A colocated learner's module is the HF engine's: its Linear layers carry the packed
    # kernel's forward, which the rollout after the update must still use.
    import types

    model = tiny()
    calls = []

    def packed(self, x):
        calls.append(x.shape)
        return torch.nn.functional.linear(x, self.weight)

    model.lm_head.forward = types.MethodType(packed, model.lm_head)
    ids, mask = rows()
    sequence_token_logprobs(model, ids, mask, first_target=5)
    assert calls == []  # inside, the hidden states came out
    model(input_ids=ids[:1])
    assert len(calls) == 1


def test_the_memory_arithmetic_budgets_a_fixed_chunk_where_the_learner_takes_it():
    from rlmr.config.memory import (
        LOGIT_CHUNK_BYTES,
        MODELS,
        activation_bytes,
        scoring_activation_bytes,
    )

    shape = MODELS["qwen2.5-7b"]
    assert shape.chunked_logits
    chunked = [activation_bytes(shape, t, chunked_logits=True) for t in (1024, 2048, 3072)]
    whole = [activation_bytes(shape, t) for t in (1024, 2048, 3072)]
    # The logits no longer grow with the tokens: the step per 1024 tokens loses 16 B x vocab.
    assert (whole[1] - whole[0]) - (chunked[1] - chunked[0]) == pytest.approx(
        16 * 1024 * shape.vocab
    )
    assert chunked[2] - chunked[1] == pytest.approx(chunked[1] - chunked[0])
    assert chunked[0] < whole[0]
    one_layer = 2 * (6 * shape.hidden + 4 * shape.intermediate) * 1024
    assert scoring_activation_bytes(shape, 1024) == pytest.approx(one_layer + 3 * LOGIT_CHUNK_BYTES)

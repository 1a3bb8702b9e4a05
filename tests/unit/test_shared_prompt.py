"""The flattened shared-prompt forward (`rlmr.training.shared_prompt`): the same log-probs,
entropies and gradients as running every row whole, on a model with grouped key/value heads; used
only where it applies; the model's attention setting restored."""

from __future__ import annotations

import pytest
import torch

from rlmr.training import shared_prompt
from rlmr.training.logprobs import sequence_token_logprobs
from rlmr.training.shared_prompt import ATTENTION_NAME, shared_prompt_logits

PROMPTS = ((5, 17, 33, 9, 12, 3), (8, 3, 21, 30, 11, 4))


def tiny(kind: str = "llama", attention: str = "sdpa", **extra):
    """A small random model of one of the families the flattened forward runs on, with grouped
    key/value heads (each serving two query heads)."""
    import transformers

    config_class, model_class = {
        "llama": (transformers.LlamaConfig, transformers.LlamaForCausalLM),
        "qwen2": (transformers.Qwen2Config, transformers.Qwen2ForCausalLM),  # biased q/k/v
        "qwen3": (transformers.Qwen3Config, transformers.Qwen3ForCausalLM),  # q/k norms
        "mistral": (transformers.MistralConfig, transformers.MistralForCausalLM),
    }[kind]
    torch.manual_seed(0)
    config = config_class(
        vocab_size=97,
        hidden_size=48,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=12,
        max_position_embeddings=64,
        attn_implementation=attention,
        **extra,
    )
    return model_class(config).float()


@pytest.fixture()
def model():
    return tiny()


def rows() -> tuple[torch.Tensor, torch.Tensor]:
    """Five rows over two prompts (neither prompt's rows all next to each other), with
    responses padded at the end to different lengths."""
    a, b = PROMPTS
    ids = torch.tensor(
        [
            [*a, 40, 41, 42, 43, 44],
            [*b, 50, 51, 0, 0, 0],
            [*a, 60, 61, 62, 0, 0],
            [*a, 80, 81, 82, 83, 0],
            [*b, 70, 71, 72, 73, 74],
        ]
    )
    return ids, (ids != 0).long()


def logprobs_and_grads(model, ids, attention, first: int):
    model.zero_grad()
    logp, ent = sequence_token_logprobs(
        model, ids, attention, with_entropy=True, first_target=first
    )
    (logp * torch.arange(1, logp.shape[1] + 1)).sum().backward()
    return logp.detach(), ent, {n: p.grad.clone() for n, p in model.named_parameters()}


def whole(model, ids, attention, first: int):
    """Every row run whole through the model (the definition)."""
    model.zero_grad()
    logp, ent = sequence_token_logprobs(model, ids, attention, with_entropy=True)
    logp = torch.nn.functional.pad(logp[:, first:], (first, 0))
    ent = torch.nn.functional.pad(ent[:, first:], (first, 0))
    (logp * torch.arange(1, logp.shape[1] + 1)).sum().backward()
    return logp.detach(), ent, {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize(
    "kind, attention, first",
    [
        ("llama", "sdpa", len(PROMPTS[0]) - 1),
        ("llama", "eager", len(PROMPTS[0]) - 1),
        ("llama", "sdpa", 1),  # a one-token prefix
        ("qwen2", "sdpa", len(PROMPTS[0]) - 1),
        ("qwen3", "sdpa", len(PROMPTS[0]) - 1),
        ("mistral", "sdpa", len(PROMPTS[0]) - 1),  # its default window (4096) is past the rows
    ],
)
def test_the_flattened_forward_equals_every_row_run_whole(kind, attention, first):
    model = tiny(kind, attention)
    ids, attention_mask = rows()
    model.train()
    calls = []
    hook = model.model.embed_tokens.register_forward_hook(lambda m, i, o: calls.append(i[0].shape))
    logits = shared_prompt_logits(model, ids, attention_mask, first)
    hook.remove()
    # one forward of one flattened sequence: each prompt's first tokens once, then every row
    assert calls == [(1, 2 * first + len(ids) * (ids.shape[1] - first))]
    assert logits.shape == (len(ids), ids.shape[1] - first, 97)

    expected, expected_ent, expected_grads = whole(model, ids, attention_mask, first)
    got, got_ent, got_grads = logprobs_and_grads(model, ids, attention_mask, first)
    assert torch.allclose(got, expected, atol=1e-5)
    assert torch.allclose(got_ent, expected_ent, atol=1e-5)
    for name, grad in expected_grads.items():  # float rounding: ~4e-7 of the gradient's norm
        assert (got_grads[name] - grad).norm() <= 1e-5 * grad.norm(), name
    assert model.config._attn_implementation == attention


def test_a_sliding_window_shorter_than_the_rows_keeps_the_other_path():
    ids, attention = rows()
    assert shared_prompt_logits(tiny("mistral"), ids, attention, 4) is not None
    narrow = tiny("mistral", sliding_window=ids.shape[1] - 1)
    assert shared_prompt_logits(narrow, ids, attention, 4) is None
    wide = tiny("mistral", sliding_window=ids.shape[1])
    assert shared_prompt_logits(wide, ids, attention, 4) is not None


def test_it_runs_only_where_it_applies(model, monkeypatch):
    ids, attention = rows()
    first = len(PROMPTS[0]) - 1
    assert shared_prompt_logits(model, ids, attention, first) is not None
    assert shared_prompt_logits(model, ids, attention, 1) is not None  # one shared token is enough
    assert shared_prompt_logits(model, ids, attention, 0) is None
    assert shared_prompt_logits(model, ids, attention, ids.shape[1]) is None  # no rest
    assert shared_prompt_logits(model, ids[:2], attention[:2], first) is None  # nothing repeats
    padded = attention.clone()
    padded[2, 0] = 0  # padding inside a prompt
    assert shared_prompt_logits(model, ids, padded, first) is None

    config = model.config
    monkeypatch.setattr(config, "use_sliding_window", True, raising=False)
    assert shared_prompt_logits(model, ids, attention, first) is None
    monkeypatch.setattr(config, "use_sliding_window", False)
    monkeypatch.setattr(
        config, "layer_types", ["full_attention", "sliding_attention"], raising=False
    )
    assert shared_prompt_logits(model, ids, attention, first) is None
    monkeypatch.setattr(config, "layer_types", ["full_attention", "full_attention"])
    assert shared_prompt_logits(model, ids, attention, first) is not None
    monkeypatch.setattr(config, "model_type", "gpt2")
    assert shared_prompt_logits(model, ids, attention, first) is None
    monkeypatch.setattr(config, "model_type", "qwen2")
    assert shared_prompt_logits(model, ids, attention, first) is not None
    config._attn_implementation = "flash_attention_2"
    assert not shared_prompt.packable(model)
    config._attn_implementation = "eager"
    assert shared_prompt.packable(model)
    # checkpointed layers recompute in the backward, after the attention setting is put back
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    assert shared_prompt_logits(model, ids, attention, first) is None


def test_the_attention_setting_is_put_back_when_the_forward_fails(model, monkeypatch):
    ids, attention = rows()

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(model.model.layers[1].mlp, "forward", broken)
    with pytest.raises(RuntimeError, match="boom"):
        shared_prompt_logits(model, ids, attention, 4)
    assert model.config._attn_implementation == "sdpa"


def test_the_attention_function_refuses_to_run_without_its_layout(model):
    q = torch.zeros(1, 4, 3, 12)
    with pytest.raises(RuntimeError, match="layout keyword"):
        shared_prompt.shared_prompt_attention(model.model.layers[0].self_attn, q, q, q, None)


def test_a_model_that_drops_the_layout_is_refused_not_miscomputed(model, monkeypatch):
    """A model whose attention layers do not pass keywords on would hand the attention function
    the flattened sequence without its layout: the call fails instead of attending across rows."""
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    ids, attention = rows()
    plain = ALL_ATTENTION_FUNCTIONS.get_interface("sdpa", None)
    real = shared_prompt.shared_prompt_attention

    def forgetful(module, query, key, value, attention_mask, **kwargs):
        kwargs.pop("rlmr_layout")
        return real(module, query, key, value, attention_mask, **kwargs)

    monkeypatch.setattr(shared_prompt, "shared_prompt_attention", forgetful)
    with pytest.raises(RuntimeError, match="do not pass"):
        shared_prompt_logits(model, ids, attention, 4)
    assert ALL_ATTENTION_FUNCTIONS.get_interface("sdpa", None) is plain
    assert model.config._attn_implementation == "sdpa"
    assert ATTENTION_NAME in ALL_ATTENTION_FUNCTIONS

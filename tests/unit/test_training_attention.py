"""The attention backend of a learner forward (`rlmr.training.logprobs.training_attention`): math
attention for a bf16 model on CPU while autograd records and the attention matrices fit, the
default (flash) everywhere else, and the same log-probs and gradients either way."""

from __future__ import annotations

import pytest
import torch

import rlmr.training.logprobs as logprobs
from rlmr.config import TinyModel
from tests.fakes import tiny_cache  # noqa: F401 (fixture)


@pytest.fixture(scope="module")
def model_dir(tiny_cache):  # noqa: F811
    from rlmr.engine.loading import resolve_model_dir

    source = TinyModel(hidden_size=32, intermediate_size=64, num_layers=2, num_heads=2, seed=3)
    return str(resolve_model_dir(source))


def _model(model_dir, dtype):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype, local_files_only=True)


def _backends(model, shape, grad=True) -> bool:
    """Whether flash attention is allowed inside the backend `training_attention` picks."""
    with torch.set_grad_enabled(grad), logprobs.training_attention(model, shape):
        return torch.backends.cuda.flash_sdp_enabled()


def test_math_attention_only_for_a_reduced_precision_cpu_model_in_a_backward_that_fits(
    model_dir, monkeypatch
):
    bf16, fp32 = _model(model_dir, torch.bfloat16), _model(model_dir, torch.float32)
    assert _backends(bf16, (4, 100)) is False  # math attention
    assert _backends(_model(model_dir, torch.float16), (4, 100)) is False
    assert _backends(fp32, (4, 100)) is True
    assert _backends(bf16, (4, 100), grad=False) is True  # a forward alone: flash is faster
    # 2 layers x 4 rows x 2 heads x width^2 x 4 bytes against the budget.
    monkeypatch.setattr(logprobs, "MATH_ATTENTION_BYTES", 2 * 4 * 2 * 100 * 100 * 4)
    assert _backends(bf16, (4, 100)) is False
    assert _backends(bf16, (4, 101)) is True  # past it: flash, which keeps no matrices
    assert torch.backends.cuda.flash_sdp_enabled()  # the setting is put back
    assert _backends(torch.nn.Linear(2, 2).bfloat16(), (4, 10)) is True  # no transformer config


def test_the_learner_forward_runs_math_attention_with_the_default_s_numbers(model_dir, monkeypatch):
    """The learner's forward and backward in bf16 run math attention (checked inside the SDPA
    call itself), and its log-probs and gradients are flash attention's to bf16 rounding."""
    from rlmr.training.logprobs import sequence_token_logprobs

    seen = []
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def recording(*args, **kwargs):
        seen.append(torch.backends.cuda.flash_sdp_enabled())
        return sdpa(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", recording)
    ids = torch.tensor([[5, 17, 33, 9, 12, 40, 41, 42], [5, 17, 33, 9, 12, 50, 51, 52]])
    mask = torch.ones_like(ids)
    results = {}
    for budget in (logprobs.MATH_ATTENTION_BYTES, 0):  # math, then flash
        monkeypatch.setattr(logprobs, "MATH_ATTENTION_BYTES", budget)
        model = _model(model_dir, torch.bfloat16)
        seen.clear()
        lp, _ = sequence_token_logprobs(model, ids, mask, first_target=4)
        lp.sum().backward()
        assert seen and set(seen) == {budget == 0}
        grads = torch.cat([p.grad.float().flatten() for p in model.parameters()])
        results[budget] = (lp.detach().float(), grads)
    (lp_math, g_math), (lp_flash, g_flash) = results.values()
    assert torch.allclose(lp_math, lp_flash, atol=0.05)
    assert torch.nn.functional.cosine_similarity(g_math, g_flash, dim=0) > 0.99

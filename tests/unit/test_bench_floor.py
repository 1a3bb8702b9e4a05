"""bench/floor.py's arithmetic: the products it counts are the model's own Linear layers."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import bench_module


@pytest.fixture(scope="module")
def floor():
    return bench_module("floor")


@pytest.mark.parametrize("kv_heads", [4, 2])
def test_layer_shapes_and_gflop_match_the_model_s_linear_layers(floor, kv_heads):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        hidden_size=64,
        intermediate_size=160,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=kv_heads,
        vocab_size=300,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    linears = [m for m in model.model.layers.modules() if isinstance(m, torch.nn.Linear)]
    per_layer = floor.layer_shapes(config)
    assert [(m.in_features, m.out_features) for m in linears] == per_layer * 3
    body = sum(m.weight.numel() for m in linears)
    head = model.lm_head.weight.numel()
    assert floor.forward_gflop(config, 10, 4) == pytest.approx(2 * (body * 10 + head * 4) / 1e9)

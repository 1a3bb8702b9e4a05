"""int8 rollout on CPU: every Linear layer of a model dynamically quantized (int8 weights, one
scale per output channel; activations quantized per call), through PyTorch's fbgemm kernels.

Decoding on CPU reads every weight once per generated token, so it is bound by memory traffic;
int8 weights are a quarter of fp32's. On SmolLM2-135M, 16 rows x 64 new tokens take 6.7 s
against 12.4-13.0 s in fp32 (measured side by side, bench/README.md). The rollout then samples
from a slightly different policy than the learner trains: the loss corrects it with the behaviour
weight (`algo.behaviour_weight_cap`), which the config requires with int8 rollout.

The fp32 model stays beside the quantized one as the master copy: weight sync writes into it and
re-quantizes each Linear from it (`refresh`), so repeated syncs never compound rounding.
"""

from __future__ import annotations

import contextlib
import copy
import warnings

import torch

_QCONFIG = torch.ao.quantization.per_channel_dynamic_qconfig


def quantize_linears(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of `model` (fp32, CPU) whose `nn.Linear` layers are int8 dynamic-quantized per
    output channel; everything else (embeddings, norms) is an fp32 copy."""
    if next(model.parameters()).device.type != "cpu":
        raise ValueError("int8 quantization runs on CPU only (fbgemm kernels)")
    with _quiet():
        quantized = torch.ao.quantization.quantize_dynamic(
            copy.deepcopy(model), {torch.nn.Linear: _QCONFIG}, dtype=torch.qint8, inplace=True
        )
    quantized.eval()
    return quantized


def _int8_per_channel(weight: torch.Tensor) -> torch.Tensor:
    """The weight quantized exactly as `quantize_dynamic` does it with the same qconfig."""
    observer = _QCONFIG.weight()
    observer(weight)
    scale, zero_point = observer.calculate_qparams()
    with _quiet():
        return torch.quantize_per_channel(
            weight.float(), scale.double(), zero_point.long(), 0, torch.qint8
        )


@contextlib.contextmanager
def _quiet():
    """torch 2.13 announces that `torch.ao` quantization moves to torchao; it still works with
    the pinned torch, and the notice would repeat at every weight sync."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(deprecated|torchao).*")
        yield


@torch.no_grad()
def refresh(quantized: torch.nn.Module, master: torch.nn.Module) -> int:
    """Make `quantized` the quantization of `master`'s current weights: each int8 Linear
    re-quantized from the master's fp32 Linear, each other parameter and buffer copied. Returns
    how many Linear layers were re-quantized."""
    linear = torch.ao.nn.quantized.dynamic.Linear
    count = 0
    for name, module in quantized.named_modules():
        if isinstance(module, linear):
            src = master.get_submodule(name)
            module.set_weight_bias(_int8_per_channel(src.weight), src.bias)
            count += 1
    sources = dict(master.named_parameters()) | dict(master.named_buffers())
    for name, tensor in list(quantized.named_parameters()) + list(quantized.named_buffers()):
        tensor.data.copy_(sources[name])
    return count

"""Linear layers on oneDNN's prepacked kernel (fp32, and bf16 where the CPU has bf16
arithmetic), for inference on CPU.

Decoding runs every Linear layer on a handful of rows (one per sequence being
sampled): a small-M matrix product that MKL's `sgemm`, PyTorch's default on
x86, does slowly on some CPUs. Measured on the project's 2-core AMD EPYC
(`bench/README.md`): a 16 x 576 by 576 x 1536 product takes 1.15 ms through
`F.linear` and 0.66 ms through oneDNN with the weight reordered once into its
blocked layout. The same fp32 arithmetic in another order: outputs agree to
float rounding (about 1e-6 relative), no precision is given up. A bf16 model
gains too on a CPU with AMX (a 12-02 Xeon: 0.035 ms against 0.069 for the
16 x 576 by 576 x 1536 product, 1.4 ms against 2.0 for the output layer's),
with the same bf16 inputs and fp32 accumulation as `F.linear`.

`pack_linears` gives each `nn.Linear` of a model a forward that uses a packed
copy of its weight, repacked whenever the weight changes in place (a weight
sync copies into the parameters: the tensor's version counter moves) and
bypassed whenever autograd is recording for the weight (the packed kernel has
no backward). `choose_linear_kernel` decides per machine: "auto" times both
kernels on the model's own layers and keeps oneDNN only where it is faster,
so a CPU on which MKL is the better kernel keeps MKL.

The two kernels round differently, so a choice that followed each start's timing would make a
run's numbers depend on a measurement: two replicas, a replica restarted after a fault, or a
resumed run could sample with different last bits. "auto" therefore times once per machine and
layer shape and remembers the choice in `$RLMR_CACHE/linear_kernel.json`; every later engine on
that machine, in this run or another, reads it. Delete the file to time again.
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import statistics
import time
import types
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

KERNELS = ("auto", "default", "onednn")


def onednn_available() -> bool:
    """Whether this PyTorch build has the oneDNN (mkldnn) linear ops."""
    return bool(torch.backends.mkldnn.is_available()) and hasattr(
        torch.ops.mkldnn, "_linear_pointwise"
    )


def packable_dtypes() -> tuple[torch.dtype, ...]:
    """The weight dtypes oneDNN's packed kernel runs here: fp32, and bf16 where oneDNN has bf16
    arithmetic on this CPU (AVX-512 BF16 or AMX; elsewhere it would emulate it, slowly)."""
    bf16 = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return (torch.float32, torch.bfloat16) if bf16 else (torch.float32,)


def _cpu_packable_linears(model: torch.nn.Module) -> list[torch.nn.Linear]:
    """The layers the packed kernel can run: every CPU `nn.Linear` of a packable dtype."""
    dtypes = packable_dtypes()
    return [
        m
        for m in model.modules()
        if isinstance(m, torch.nn.Linear)
        and m.weight.dtype in dtypes
        and m.weight.device.type == "cpu"
    ]


def _packed_forward(self, x: torch.Tensor) -> torch.Tensor:
    weight = self.weight
    if (
        x.dtype != weight.dtype
        or x.device.type != "cpu"
        or (torch.is_grad_enabled() and (weight.requires_grad or x.requires_grad))
    ):
        return torch.nn.functional.linear(x, weight, self.bias)
    if self._rlmr_packed_version != (weight.data_ptr(), weight._version):
        self._rlmr_packed = torch.ops.mkldnn._reorder_linear_weight(
            weight.detach(), self._rlmr_batch_hint
        )
        self._rlmr_packed_version = (weight.data_ptr(), weight._version)
    return torch.ops.mkldnn._linear_pointwise(x, self._rlmr_packed, self.bias, "none", [None], "")


def pack_linears(model: torch.nn.Module, batch_hint: int) -> int:
    """Route every fp32 (and, where the CPU computes it, bf16) CPU `nn.Linear` of `model`
    through oneDNN's packed kernel (the packed layout is tuned for `batch_hint` rows); returns
    how many layers now do. The packed copy costs the layers' weights once more in memory."""
    if not onednn_available():
        return 0
    count = 0
    for module in _cpu_packable_linears(model):
        module._rlmr_batch_hint = max(1, int(batch_hint))
        module._rlmr_packed = None
        module._rlmr_packed_version = None
        module.forward = types.MethodType(_packed_forward, module)
        count += 1
    return count


def release_packed(model: torch.nn.Module) -> int:
    """Drop every packed copy of `model`'s weights; each layer packs again on its next forward.
    For weights changed behind the version counter: PyTorch's fused optimizers (the learner's
    fused AdamW) write the parameters without moving it, so a colocated engine, which runs the
    learner's own module, calls this after every update. Frees the copies' memory meanwhile.
    Returns how many layers held one."""
    count = 0
    for module in model.modules():
        if hasattr(module, "_rlmr_packed"):
            count += module._rlmr_packed is not None
            module._rlmr_packed = module._rlmr_packed_version = None
    return count


def median_seconds(fn, repeats: int = 7) -> float:
    """Median seconds of `fn()` over `repeats` calls, after one warm-up call (which also pays a
    kernel's one-off weight reorder)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def choose_linear_kernel(model: torch.nn.Module, kernel: str, batch_hint: int) -> str:
    """The kernel to use: `default` or `onednn`. `auto` picks oneDNN for a CPU model it can pack
    (fp32; bf16 where the CPU has bf16 arithmetic) when its packed kernel beats `F.linear` by 10%
    at `batch_hint` rows on the layer shape that holds the most weight (median of 7 calls each:
    a few milliseconds on a 135M model), once per machine (`remembered`)."""
    if kernel not in KERNELS:
        raise ValueError(f"linear_kernel: expected one of {KERNELS}, got {kernel!r}")
    if kernel != "auto":
        if kernel == "onednn" and not onednn_available():
            raise ValueError("linear_kernel: onednn requested, but this PyTorch has no oneDNN")
        return kernel
    linears = _cpu_packable_linears(model)
    if not linears or not onednn_available():
        return "default"
    # The shape holding the most weight over all layers (a transformer's MLP projections): where
    # decoding spends its time.
    by_shape: dict[tuple[int, ...], list[torch.nn.Linear]] = {}
    for m in linears:
        by_shape.setdefault(tuple(m.weight.shape), []).append(m)
    layers = max(by_shape.values(), key=lambda ms: len(ms) * ms[0].weight.numel())
    weight = layers[0].weight.detach()
    rows = max(1, int(batch_hint))
    key = "|".join(
        [
            cpu_model(),
            f"torch {torch.__version__}",
            f"{torch.get_num_threads()} threads",
            str(weight.dtype).removeprefix("torch."),
            "x".join(map(str, weight.shape)),
            f"{rows} rows",
        ]
    )
    return remembered(key, lambda: _faster_kernel(weight, rows))


def _faster_kernel(weight: torch.Tensor, rows: int) -> str:
    # A generator of its own: the global one belongs to the run's seed, and only the process
    # that times would draw from it.
    x = torch.randn(rows, weight.shape[1], generator=torch.Generator().manual_seed(0))
    x = x.to(weight.dtype)
    packed = torch.ops.mkldnn._reorder_linear_weight(weight, rows)
    with torch.no_grad():
        mkl = median_seconds(lambda: torch.nn.functional.linear(x, weight))
        onednn = median_seconds(
            lambda: torch.ops.mkldnn._linear_pointwise(x, packed, None, "none", [None], "")
        )
    return "onednn" if onednn < 0.9 * mkl else "default"


def cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def choices_path() -> Path:
    from rlmr.engine.loading import cache_root

    return cache_root() / "linear_kernel.json"


def remembered(key: str, decide: Callable[[], str]) -> str:
    """The kernel this machine chose for `key` before, else `decide()`'s, written down first. A
    file lock makes replicas starting together agree; an unreadable file is timed again. Where
    the cache folder cannot be written, the choice is made without being remembered (a warning
    says so: replicas may then round differently)."""
    path = choices_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = open(path.with_name(path.name + ".lock"), "a")
    except OSError as err:
        warnings.warn(
            f"linear_kernel auto: cannot write {path.parent} ({err}); timing the kernels "
            "without remembering the choice",
            stacklevel=2,
        )
        return decide()
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            choices = json.loads(path.read_text())
            if not isinstance(choices, dict):
                choices = {}
        except (OSError, ValueError):
            choices = {}
        if choices.get(key) not in ("default", "onednn"):
            choices[key] = decide()
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(choices, indent=1, sort_keys=True) + "\n")
            os.replace(tmp, path)
        return choices[key]

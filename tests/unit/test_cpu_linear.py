"""oneDNN's packed Linear kernel for CPU inference (`rlmr.engine.cpu_linear`) and the HF engine on
it: the same numbers as `F.linear`, weights that change in place are repacked, autograd keeps the
default kernel, and `auto` keeps whichever kernel is faster."""

from __future__ import annotations

import json
import time

import pytest
import torch

from rlmr.config import HFEngine as HFEngineConfig
from rlmr.config import TinyModel
from rlmr.engine import SamplingParams
from rlmr.engine.cpu_linear import (
    choose_linear_kernel,
    onednn_available,
    pack_linears,
    packable_dtypes,
    release_packed,
)
from rlmr.engine.hf import HFEngine
from tests.fakes import tiny_cache  # noqa: F401 (fixture)

pytestmark = pytest.mark.skipif(not onednn_available(), reason="this PyTorch has no oneDNN")
PROMPTS = ["Once upon a time", "The lighthouse keeper heard a knock at the door and"]


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(24, 40), torch.nn.ReLU(), torch.nn.Linear(40, 8, bias=False)
    )


def test_packed_layers_compute_what_f_linear_computes_and_follow_in_place_changes():
    model = _model()
    x = torch.randn(3, 5, 24)
    with torch.no_grad():
        expected = model(x)
    assert pack_linears(model, batch_hint=4) == 2
    with torch.no_grad():
        got = model(x)
        assert torch.allclose(got, expected, rtol=1e-5, atol=1e-5)
        assert model[0]._rlmr_packed is not None and model[0]._rlmr_packed.is_mkldnn
        # A weight sync copies into the parameter: the packed copy follows it.
        model[0].weight.copy_(model[0].weight * -2.0)
        changed = model(x)
    model[0].forward = torch.nn.Linear.forward.__get__(model[0])
    model[2].forward = torch.nn.Linear.forward.__get__(model[2])
    with torch.no_grad():
        assert torch.allclose(changed, model(x), rtol=1e-5, atol=1e-5)
        assert not torch.allclose(changed, expected, atol=1e-3)


def test_weights_a_fused_optimizer_writes_need_the_packed_copies_released():
    """PyTorch's fused AdamW (the learner's) writes parameters without moving their version
    counters: a packed copy cannot see that step; `release_packed` (what a colocated engine calls
    after every update) drops the copies and the next forward packs the new weights."""
    model = _model()
    x = torch.randn(3, 5, 24)
    pack_linears(model, batch_hint=4)
    with torch.no_grad():
        model(x)  # packs
    model.zero_grad()
    model(x).square().sum().backward()
    versions = [p._version for p in model.parameters()]
    torch.optim.AdamW(model.parameters(), lr=0.1, fused=True).step()
    assert [p._version for p in model.parameters()] == versions  # the counters did not move
    with torch.no_grad():
        fresh = torch.nn.functional.linear(
            torch.relu(torch.nn.functional.linear(x, model[0].weight, model[0].bias)),
            model[2].weight,
        )
        assert not torch.allclose(model(x), fresh, atol=1e-3)  # stale: the old weights
        assert release_packed(model) == 2 and model[0]._rlmr_packed is None
        assert torch.allclose(model(x), fresh, rtol=1e-5, atol=1e-5)
        assert release_packed(model) == 2  # packed again by that forward
    assert release_packed(torch.nn.Linear(3, 3)) == 0  # never packed: nothing to drop


def test_packed_layers_leave_training_to_the_default_kernel():
    plain, packed = _model(), _model()
    pack_linears(packed, batch_hint=4)
    x = torch.randn(6, 24)
    plain(x).square().sum().backward()
    packed(x).square().sum().backward()  # the packed op has no backward: it must not be used
    for a, b in zip(plain.parameters(), packed.parameters()):
        assert torch.equal(a.grad, b.grad)
    assert packed[0]._rlmr_packed is None  # never packed: every call recorded for autograd
    with torch.inference_mode():
        packed(x)
    assert packed[0]._rlmr_packed is not None


def test_pack_linears_skips_layers_it_cannot_run():
    model = _model()
    model[2].to(torch.float16)
    assert pack_linears(model, batch_hint=4) == 1
    assert "forward" not in vars(model[2])


@pytest.mark.skipif(
    torch.bfloat16 not in packable_dtypes(), reason="oneDNN has no bf16 arithmetic on this CPU"
)
def test_bf16_layers_pack_where_the_cpu_computes_bf16_and_give_f_linear_s_numbers():
    model = _model().to(torch.bfloat16)
    x = torch.randn(3, 5, 24, dtype=torch.bfloat16)
    with torch.no_grad():
        expected = model(x)
    assert pack_linears(model, batch_hint=4) == 2
    with torch.no_grad():
        got = model(x)
    assert model[0]._rlmr_packed is not None and got.dtype == torch.bfloat16
    assert torch.allclose(got.float(), expected.float(), rtol=1e-2, atol=1e-2)


def test_choose_linear_kernel():
    model = _model()
    assert choose_linear_kernel(model, "default", 16) == "default"
    assert choose_linear_kernel(model, "onednn", 16) == "onednn"
    assert choose_linear_kernel(model, "auto", 16) in ("default", "onednn")
    assert choose_linear_kernel(model.to(torch.float16), "auto", 16) == "default"
    assert choose_linear_kernel(torch.nn.ReLU(), "auto", 16) == "default"
    with pytest.raises(ValueError, match=r"linear_kernel: expected one of .*'mkl'"):
        choose_linear_kernel(model, "mkl", 16)


def test_auto_times_once_per_machine_and_every_later_engine_takes_that_choice(
    tmp_path, monkeypatch
):
    """Two replicas, a restarted one or a resumed run must not round differently because a
    timing came out the other way."""
    import threading

    from rlmr.engine import cpu_linear

    monkeypatch.setenv("RLMR_CACHE", str(tmp_path))
    timed = []

    def timing_that_flips(weight, rows):
        timed.append(rows)
        time.sleep(0.05)  # threads that start together all wait for the first one's choice
        return ("onednn", "default")[len(timed) % 2]

    monkeypatch.setattr(cpu_linear, "_faster_kernel", timing_that_flips)
    model = _model()
    got = []
    threads = [
        threading.Thread(target=lambda: got.append(choose_linear_kernel(model, "auto", 16)))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == ["default"] * 4 and timed == [16]
    assert choose_linear_kernel(model, "auto", 16) == "default" and timed == [16]
    assert choose_linear_kernel(model, "auto", 4) == "onednn" and timed == [16, 4]
    choices = json.loads((tmp_path / "linear_kernel.json").read_text())
    assert sorted(choices.values()) == ["default", "onednn"]
    assert all("40x24" in key and "float32" in key for key in choices)

    (tmp_path / "linear_kernel.json").write_text("{not json")  # a damaged file: timed again
    assert choose_linear_kernel(model, "auto", 16) == "default" and timed == [16, 4, 16]
    assert len(json.loads((tmp_path / "linear_kernel.json").read_text())) == 1


def test_a_cache_that_cannot_be_written_still_gives_a_kernel(tmp_path, monkeypatch):
    blocked = tmp_path / "file"
    blocked.write_text("")
    monkeypatch.setenv("RLMR_CACHE", str(blocked / "cache"))  # under a file: mkdir fails
    with pytest.warns(UserWarning, match=r"cannot write .*file/cache"):
        assert choose_linear_kernel(_model(), "auto", 16) in ("default", "onednn")


def test_timing_the_kernels_leaves_the_run_s_random_numbers_alone(tmp_path, monkeypatch):
    """Only the process that times would draw from the global generator: its samples would
    differ from a process that read the choice."""
    monkeypatch.setenv("RLMR_CACHE", str(tmp_path))
    model = _model()
    torch.manual_seed(3)
    expected = torch.rand(4)
    torch.manual_seed(3)
    choose_linear_kernel(model, "auto", 16)
    assert torch.equal(torch.rand(4), expected)


def test_the_engine_on_the_packed_kernel_samples_and_syncs_as_on_the_default(tiny_cache):  # noqa: F811
    def engine(kernel):
        return HFEngine.from_source(
            TinyModel(), dtype="float32", device="cpu", batch_size=4, linear_kernel=kernel
        )

    default, onednn = engine("default"), engine("onednn")
    assert (default.linear_kernel, onednn.linear_kernel) == ("default", "onednn")
    assert "forward" in vars(onednn.model.lm_head) and "forward" not in vars(default.model.lm_head)
    params = SamplingParams(max_new_tokens=8, n=2, temperature=1.0, seed=5)
    for _sync in range(2):
        a, b = default.generate(PROMPTS, params), onednn.generate(PROMPTS, params)
        for ga, gb in zip(a, b):
            for x, y in zip(ga, gb):
                assert x.token_ids == y.token_ids
                assert x.logprobs == pytest.approx(y.logprobs, abs=1e-5)
        # The same weight sync to both: the packed engine must sample from the new weights.
        weights = default.model.state_dict().items()
        new = [(k, v * 1.5) for k, v in weights if k.endswith("proj.weight")]
        assert default.load_weights(new) == onednn.load_weights(new) == len(new)
    assert HFEngineConfig().linear_kernel == "auto"

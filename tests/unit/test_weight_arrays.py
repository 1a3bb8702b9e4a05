"""The CPU weight-sync transport: tensors as NumPy arrays, exact round trip, no copies."""

import numpy as np
import pytest
import torch

from rlmr.engine.weight_arrays import from_arrays, to_arrays


def test_round_trip_is_exact_for_every_dtype_including_bfloat16():
    g = torch.Generator().manual_seed(0)
    state = {
        "a.weight": torch.randn(3, 4, generator=g),
        "b.weight": torch.randn(5, generator=g).to(torch.bfloat16),
        "c.bias": torch.randn(2, 2, generator=g).to(torch.float16),
        "d.steps": torch.tensor([1, 2, 3]),
    }
    arrays = to_arrays(state)
    assert [a[1] for a in arrays.values()] == ["float32", "bfloat16", "float16", "int64"]
    assert arrays["b.weight"][0].dtype == np.int16  # bfloat16's bits
    back = dict(from_arrays(arrays))
    assert list(back) == list(state)
    for name, t in state.items():
        assert back[name].dtype == t.dtype and back[name].shape == t.shape
        assert torch.equal(back[name], t)


def test_cpu_tensors_are_shared_not_copied():
    t = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    array, _ = to_arrays({"w": t})["w"]
    assert np.shares_memory(array, t.numpy())
    back = dict(from_arrays({"w": (array, "float32")}))["w"]
    assert back.data_ptr() == t.data_ptr()
    # a non-contiguous view is made contiguous first (Ray stores one flat buffer)
    arr_t, _ = to_arrays({"w": t.t()})["w"]
    assert arr_t.flags["C_CONTIGUOUS"] and np.array_equal(arr_t, t.t().numpy())


def test_read_only_arrays_as_ray_returns_them_load_into_a_model_without_warning(recwarn):
    array = np.arange(4, dtype=np.float32)
    array.flags.writeable = False  # what ray.get hands back from the object store
    target = torch.zeros(4)
    for _, tensor in from_arrays({"w": (array, "float32")}):
        target.copy_(tensor)
    assert torch.equal(target, torch.arange(4, dtype=torch.float32))
    assert not [w for w in recwarn if "not writable" in str(w.message)]


def test_an_unknown_dtype_names_the_weight():
    with pytest.raises(ValueError, match=r"weight 'w': unknown torch dtype 'float99'"):
        list(from_arrays({"w": (np.zeros(1), "float99")}))
    with pytest.raises(ValueError, match="'Tensor'"):
        list(from_arrays({"w": (np.zeros(1), "Tensor")}))  # a torch attribute, not a dtype

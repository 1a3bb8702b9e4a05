"""A frozen model's weights in a file mapping (`rlmr.engine.file_weights`), and the reference role
that keeps its weights there between calls (`algo.kl.reference_in_file`)."""

from __future__ import annotations

import pytest
import torch

from rlmr.config import TinyModel
from rlmr.core.records import Group, PromptRow, Response, TokenBatch
from rlmr.engine.file_weights import (
    FileBackedWeights,
    file_backed_dir,
    filesystem_type,
    resident_bytes,
)
from tests.fake_services import fake_run_config
from tests.fakes import tiny_cache  # noqa: F401 (fixture)


def _tiny_model():
    from rlmr.engine.loading import load_model_and_tokenizer

    model, _ = load_model_and_tokenizer(TinyModel(), "float32", "cpu")
    return model.requires_grad_(False)


def _resident(weights: FileBackedWeights) -> int:
    return resident_bytes(*weights.address_range())


def test_weights_in_a_file_compute_the_same_and_leave_the_process_at_release(
    tiny_cache,  # noqa: F811
    tmp_path,
):
    model = _tiny_model()
    ids = torch.randint(5, 200, (2, 12), generator=torch.Generator().manual_seed(0))
    before = model(ids).logits
    weights = FileBackedWeights(model, tmp_path)
    assert list(tmp_path.iterdir()) == []  # the file is unlinked: nothing is left behind
    start, length = weights.address_range()
    assert length >= sum(p.numel() * p.element_size() for p in model.parameters())
    assert all(start <= p.data_ptr() < start + length for p in model.parameters())
    assert _resident(weights) == 0  # handed back once written

    assert torch.equal(model(ids).logits, before)
    assert _resident(weights) > length // 2  # the forward read them back in
    weights.release()
    assert _resident(weights) == 0
    assert torch.equal(model(ids).logits, before)


def test_only_a_frozen_model_moves_into_a_file(tiny_cache, tmp_path):  # noqa: F811
    model = _tiny_model().requires_grad_(True)
    with pytest.raises(ValueError, match="frozen model"):
        FileBackedWeights(model, tmp_path)


MOUNTS = (
    "/dev/vda / ext4 rw 0 0\n"
    "tmpfs /dev/shm tmpfs rw 0 0\n"
    "tmpfs /data/ram tmpfs rw 0 0\n"
    "/dev/vdb /data/ram/disk xfs rw 0 0\n"
)


def test_a_ram_file_system_keeps_the_weights_in_memory(tmp_path, monkeypatch):
    """On tmpfs the page cache is the memory itself: no file there, the caller keeps the weights."""
    monkeypatch.setattr("os.path.realpath", lambda p: str(p))
    assert filesystem_type("/data/ram/x", MOUNTS) == "tmpfs"
    assert filesystem_type("/data/ram/disk/x", MOUNTS) == "xfs"  # the longest mount point wins
    assert filesystem_type("/data/rambo", MOUNTS) == "ext4"
    assert file_backed_dir(tmp_path / "cache", "tmpfs / tmpfs rw 0 0\n") is None
    assert file_backed_dir(tmp_path / "cache", "/dev/vda / ext4 rw 0 0\n") == tmp_path / "cache"


def _tokens() -> TokenBatch:
    g = torch.Generator().manual_seed(1)
    groups = []
    for p in range(2):
        prompt = tuple(torch.randint(5, 200, (7,), generator=g).tolist())
        responses = tuple(
            Response(
                f"r{s}",
                tuple(torch.randint(5, 200, (4 + s,), generator=g).tolist()),
                (-1.0,) * (4 + s),
                "stop",
            )
            for s in range(3)
        )
        groups.append(Group(PromptRow(f"p{p}", "x"), "x", prompt, responses))
    return TokenBatch.from_groups(groups, pad_token_id=0)


def test_the_reference_role_reads_its_weights_from_a_file_and_hands_them_back(
    tiny_cache,  # noqa: F811
    tmp_path,
):
    """`algo.kl.reference_in_file` and `algo.kl.reference_micro_batch` reach the reference role:
    the same log-probs either way, the weights out of the process after every call."""
    from actors.reference import ReferenceCalls

    on, off = ReferenceCalls(), ReferenceCalls()
    on.load_reference(
        fake_run_config(tmp_path / "on", "algo.kl.beta=0.1", "algo.kl.reference_micro_batch=5"),
        "cpu",
    )
    off.load_reference(
        fake_run_config(tmp_path / "off", "algo.kl.beta=0.1", "algo.kl.reference_in_file=false"),
        "cpu",
    )
    assert on.reference_micro_batch == 5 and off.reference_micro_batch == 4
    assert off.reference_weights is None and on.reference_weights is not None
    tokens = _tokens()
    kept = off.reference_logprobs(tokens)
    assert _resident(on.reference_weights) == 0
    filed = on.reference_logprobs(tokens)
    assert torch.allclose(filed, kept, atol=1e-5) and filed.abs().sum() > 0
    assert _resident(on.reference_weights) == 0  # handed back when the call returned

"""Model loading: tiny models (deterministic, cached atomically), package lookup without import,
errors."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from rlmr.config import LocalModel, TinyModel
from rlmr.engine import loading
from rlmr.judge.verdict import choose_verdict_labels
from tests.fakes import tiny_cache  # noqa: F401 (fixture)

SMALL = TinyModel(vocab_size=300, hidden_size=16, intermediate_size=32, num_layers=1, num_heads=2)


def _weights(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def test_tiny_model_is_deterministic_across_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("RLMR_CACHE", str(tmp_path / "one"))
    a = loading.resolve_model_dir(SMALL)
    monkeypatch.setenv("RLMR_CACHE", str(tmp_path / "two"))
    b = loading.resolve_model_dir(SMALL)
    assert a != b and a.name == b.name  # same config -> same cache key
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys() and all((wa[k] == wb[k]).all() for k in wa)
    assert (a / "tokenizer.json").read_text() == (b / "tokenizer.json").read_text()
    other = loading.resolve_model_dir(SMALL.model_copy(update={"seed": 1}))
    wo = _weights(other)
    assert any(not (wa[k] == wo[k]).all() for k in wa)


def test_tiny_model_is_built_once_then_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("RLMR_CACHE", str(tmp_path))
    first = loading.resolve_model_dir(SMALL)
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    assert loading.resolve_model_dir(SMALL) == first
    assert (first / "model.safetensors").stat().st_mtime_ns == stamp
    assert not [p for p in first.parent.iterdir() if p.name.startswith(".tmp-")]


def test_cache_write_survives_losing_a_race(tmp_path):
    final = tmp_path / "entry"

    def build(tmp):
        (tmp / "config.json").write_text("{}")
        # Another process finishes the same entry while we are still building ours.
        final.mkdir()
        (final / "config.json").write_text('{"winner": true}')

    assert loading._build_atomically(final, build) == final
    assert "winner" in (final / "config.json").read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["entry"]  # our temporary folder is gone


def test_failed_build_leaves_no_entry(tmp_path):
    def build(tmp):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        loading._build_atomically(tmp_path / "entry", build)
    assert list(tmp_path.iterdir()) == []


def test_tiny_tokenizer_and_model_load(tiny_cache):  # noqa: F811
    model, tok = loading.load_model_and_tokenizer(SMALL, dtype="float32", device="cpu")
    assert model.config.vocab_size >= len(tok)
    assert tok.pad_token_id is not None and tok.eos_token == "<|im_end|>"
    text = tok.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert text.endswith("<|im_start|>assistant\n")
    assert (
        tok.decode(tok.encode("Any text, even ünïcode ✓", add_special_tokens=False))
        == "Any text, even ünïcode ✓"
    )
    choose_verdict_labels(tok)  # the judge can read verdicts from the tiny tokenizer


def test_package_model_is_found_without_importing_the_package(tmp_path, monkeypatch):
    pkg = tmp_path / "fake_weights_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("raise ImportError('must not be imported')\n")
    (pkg / "model.gguf").write_bytes(b"GGUF")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert loading.package_file("fake_weights_pkg", "model.gguf") == pkg / "model.gguf"
    assert "fake_weights_pkg" not in sys.modules
    with pytest.raises(loading.ModelLoadError, match="no file"):
        loading.package_file("fake_weights_pkg", "other.gguf")
    with pytest.raises(loading.ModelLoadError, match="not installed"):
        loading.package_file("surely_not_installed_pkg_xyz", "m.gguf")


def test_bad_sources_fail_clearly(tmp_path):
    with pytest.raises(loading.ModelLoadError, match="not a model folder"):
        loading.resolve_model_dir(LocalModel(path=str(tmp_path)))
    with pytest.raises(loading.ModelLoadError, match="not found"):
        loading.resolve_model_dir(LocalModel(path=str(tmp_path / "missing.gguf")))
    with pytest.raises(ValueError, match="dtype"):
        loading.torch_dtype("float64")


@pytest.mark.parametrize("point_at", ["run", "checkpoints"])
def test_a_run_directory_stands_for_its_newest_policy(tmp_path, point_at):
    """`model.source: {type: local, path: runs/NAME}` starts the next stage from the newest
    complete checkpoint; an older step or a half-written one is never picked."""
    ckpts = tmp_path / "run" / "checkpoints"
    for step in ("step_000010", "step_000020", "step_000030"):
        (ckpts / step / "policy").mkdir(parents=True)
        (ckpts / step / "policy" / "config.json").write_text("{}")
    (ckpts / "latest").write_text("step_000020\n")
    folder = tmp_path / "run" if point_at == "run" else ckpts
    assert (
        loading.resolve_model_dir(LocalModel(path=str(folder))) == ckpts / "step_000020" / "policy"
    )
    (ckpts / "latest").write_text("step_000040")
    with pytest.raises(loading.ModelLoadError, match="step_000040"):
        loading.resolve_model_dir(LocalModel(path=str(folder)))


def test_cache_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("RLMR_CACHE", str(tmp_path))
    assert loading.cache_root() == tmp_path
    monkeypatch.delenv("RLMR_CACHE")
    assert loading.cache_root() == Path.home() / ".cache" / "rlmr"

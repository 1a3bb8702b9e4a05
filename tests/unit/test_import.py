"""`import rlmr` and the pure core stay light: no Ray, vLLM, DeepSpeed, transformers or datasets."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("ray", "vllm", "deepspeed", "transformers", "datasets")


def _loaded_after(code: str) -> set[str]:
    probe = code + "\nimport sys\nprint(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_import_rlmr_loads_no_heavy_backend():
    loaded = _loaded_after("import rlmr")
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


def test_core_modules_load_no_backend_other_than_torch():
    loaded = _loaded_after("import rlmr.core.algo, rlmr.core.rewards, rlmr.core.shaping, rlmr.config, rlmr.engine")
    assert "torch" in loaded
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


def test_cli_help_is_instant_and_imports_no_torch():
    loaded = _loaded_after("import rlmr.cli; rlmr.cli.build_parser()")
    assert "torch" not in loaded and not loaded & set(HEAVY)

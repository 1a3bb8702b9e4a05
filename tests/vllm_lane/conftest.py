"""The real-vLLM lane runs only where `vllm` imports (its own virtualenv, see run.sh).

Elsewhere (the core virtualenv) `test_real_vllm.py` skips itself with
`pytest.importorskip("vllm")`, so `pytest tests/` and `pytest tests/vllm_lane`
both report it skipped. The skip is in the test module, not here: a skip raised
while importing a conftest of a folder named on the command line stops pytest
with a traceback instead of skipping.
"""

from __future__ import annotations

import importlib.util
import os

if importlib.util.find_spec("vllm") is not None:
    # No hub, no telemetry; vLLM's engine-core and worker processes inherit these.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
    os.environ.setdefault("DO_NOT_TRACK", "1")

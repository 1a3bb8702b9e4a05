"""Text engines: one interface (`base.TextEngine`), an HF-transformers and a vLLM implementation.

    from rlmr.engine import build_engine
    engine = build_engine(source, engine_cfg, dtype="float32", max_model_len=1024)

Model loading (local folder, GGUF file, package file, tiny random model) lives
in `rlmr.engine.loading`. Importing this package loads neither torch nor vLLM.
"""

from rlmr.engine.base import (
    EngineInfo,
    Generation,
    Prompt,
    SamplingParams,
    TextEngine,
    WeightSyncEngine,
)
from rlmr.engine.factory import build_engine

__all__ = [
    "EngineInfo",
    "Generation",
    "Prompt",
    "SamplingParams",
    "TextEngine",
    "WeightSyncEngine",
    "build_engine",
]

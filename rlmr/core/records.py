"""Typed records for everything that crosses an actor boundary: prompts, groups, scores, train batches.

Plain dataclasses of Python values and torch tensors (cheap to pickle through
Ray's object store); no dicts of strings. `build_train_batch` turns scored
groups into the padded tensors the learner consumes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class PromptRow:
    """One writing prompt with the constraints its response must meet."""

    id: str
    prompt: str | tuple[dict, ...]  # plain text, or chat messages [{"role", "content"}]
    constraints: tuple[dict, ...] = ()
    context: str | None = None  # outline, characters... shown to the judge
    reference: str | None = None  # reference response for the judge's `reference` strategy

    def brief(self) -> str:
        """The user's request as text (the last user message for chat prompts)."""
        if isinstance(self.prompt, str):
            return self.prompt
        users = [m["content"] for m in self.prompt if m.get("role") == "user"]
        return users[-1] if users else self.prompt[-1]["content"]


@dataclass(frozen=True)
class Response:
    """One sampled response with the rollout engine's log-probs of its tokens."""

    text: str
    token_ids: tuple[int, ...]
    logprobs: tuple[float, ...]
    finish_reason: str  # "stop" or "length"


@dataclass(frozen=True)
class Group:
    """The `n` responses sampled for one prompt."""

    row: PromptRow
    prompt_text: str  # after the chat template
    prompt_token_ids: tuple[int, ...]
    responses: tuple[Response, ...]

    @property
    def texts(self) -> list[str]:
        return [r.text for r in self.responses]


@dataclass(frozen=True)
class Verdicts:
    """The verifier's answer for one group: per response, overall flag, share met, per-constraint detail."""

    passed: tuple[bool, ...]
    passed_fraction: tuple[float, ...]
    details: tuple[tuple[dict, ...], ...] = ()  # per response: [{"type", "passed", "reason"?}, ...]


@dataclass(frozen=True)
class WritingScores:
    """The judge's answer for one group: scores w in [0, 1] and the verdict entropies."""

    scores: tuple[float, ...]
    entropies: tuple[float, ...] = ()
    position_consistency: float | None = None


@dataclass
class TrainBatch:
    """Padded tensors for the learner. Sequence axis: prompt + response, right-padded.

    Per-token tensors are aligned with *targets* (`input_ids[:, 1:]`), so they
    have `T - 1` columns; `response_mask` marks response tokens there.
    """

    input_ids: torch.Tensor  # [B, T] long
    attention_mask: torch.Tensor  # [B, T] long
    response_mask: torch.Tensor  # [B, T-1] bool
    advantages: torch.Tensor  # [B] float
    rollout_logprobs: torch.Tensor  # [B, T-1] float (0 outside the response)
    old_logprobs: torch.Tensor | None = None  # [B, T-1]: the learner's, before the update
    ref_logprobs: torch.Tensor | None = None  # [B, T-1]: the frozen reference's
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    def select(self, index) -> TrainBatch:
        """Rows `index` (a slice or index tensor) of every tensor."""
        def pick(t):
            return None if t is None else t[index]

        return TrainBatch(
            input_ids=self.input_ids[index], attention_mask=self.attention_mask[index],
            response_mask=self.response_mask[index], advantages=self.advantages[index],
            rollout_logprobs=self.rollout_logprobs[index], old_logprobs=pick(self.old_logprobs),
            ref_logprobs=pick(self.ref_logprobs), meta=self.meta)

    def split(self, parts: int) -> list[TrainBatch]:
        """`parts` equal, contiguous slices (the caller guarantees divisibility)."""
        if len(self) % parts:
            raise ValueError(f"cannot split a batch of {len(self)} into {parts} equal parts")
        size = len(self) // parts
        return [self.select(slice(i * size, (i + 1) * size)) for i in range(parts)]


def build_train_batch(groups: list[Group], advantages: torch.Tensor, pad_token_id: int) -> TrainBatch:
    """Flatten groups (`[groups, n]` advantages) into one right-padded batch of prompt + response."""
    if advantages.shape != (len(groups), len(groups[0].responses) if groups else 0):
        raise ValueError(f"advantages: expected shape [{len(groups)}, n], got {tuple(advantages.shape)}")
    seqs, resp_starts, lps = [], [], []
    for group in groups:
        if not group.prompt_token_ids:
            raise ValueError(f"prompt {group.row.id!r}: empty prompt token ids (a prompt needs at least one token)")
        for resp in group.responses:
            seqs.append(list(group.prompt_token_ids) + list(resp.token_ids))
            resp_starts.append(len(group.prompt_token_ids))
            lps.append(resp.logprobs)
    width = max(len(s) for s in seqs)
    b = len(seqs)
    input_ids = torch.full((b, width), pad_token_id, dtype=torch.long)
    attention = torch.zeros((b, width), dtype=torch.long)
    resp_mask = torch.zeros((b, width - 1), dtype=torch.bool)
    rollout_lp = torch.zeros((b, width - 1), dtype=torch.float32)
    for i, (seq, start, lp) in enumerate(zip(seqs, resp_starts, lps)):
        input_ids[i, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        attention[i, : len(seq)] = 1
        # Target position t predicts input_ids[t + 1]; response token j sits at start + j.
        if len(seq) > start:
            resp_mask[i, start - 1 : len(seq) - 1] = True
            rollout_lp[i, start - 1 : len(seq) - 1] = torch.tensor(lp, dtype=torch.float32)
    return TrainBatch(input_ids=input_ids, attention_mask=attention, response_mask=resp_mask,
                      advantages=advantages.reshape(-1).to(torch.float32), rollout_logprobs=rollout_lp)

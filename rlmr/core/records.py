"""Typed records for everything the driver and its workers exchange: prompts, groups, scores,
batches.

Frozen dataclasses of Python values and torch tensors (cheap to pickle through
Ray's object store); no dicts of strings. One step's data flow, in records:

    PromptRow -> Group (rollout) -> ScoredGroup (+ Verdicts from the verifier,
    + WritingScores from the judge) -> TokenBatch (padded prompt + response)
    -> TrainBatch (+ advantages, + reference log-probs), built once, never mutated
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where a tensor is built: a verifier process never loads torch
    import torch


@dataclass(frozen=True)
class PromptRow:
    """One writing prompt with the constraints its response must meet."""

    id: str
    prompt: str | tuple[dict, ...]  # plain text, or chat messages [{"role", "content"}]
    constraints: tuple[dict, ...] = ()
    context: str | None = None  # outline, characters... shown to the judge
    reference: str | None = None  # reference response for the judge's `reference` strategy
    text: str | None = None  # the exact text the policy sees, already formatted (no chat template)
    label: str | None = None  # judge training: where the better response is, "first" or "second"

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
    # The rollout engines' weight version when they sampled it (weight syncs so far in this run);
    # the learner's version minus this is the group's staleness (docs/ALGORITHMS.md section 5).
    version: int = 0

    @property
    def texts(self) -> list[str]:
        return [r.text for r in self.responses]

    def for_scoring(self) -> Group:
        """This group as the verifier and the judge read it: the prompt row, the prompt text, the
        responses' texts and finish reasons; no token ids, no log-probs.

        Those are most of a group's bytes (a 256-token response is 25x its text in pickled tuples)
        and neither reward reads them, so they never cross to the reward workers.
        """
        return dataclasses.replace(
            self,
            prompt_token_ids=(),
            responses=tuple(Response(r.text, (), (), r.finish_reason) for r in self.responses),
        )


@dataclass(frozen=True)
class ConstraintOutcome:
    """The verifier's answer on one constraint of one response."""

    type: str  # the constraint type, e.g. "creative:word_count"
    index: int | None  # its position in the prompt's constraint list; None for the built-in guard
    passed: bool | None  # None: it could not be checked (a soft constraint without an engine)
    reason: str = ""  # why it failed, when the rule says


@dataclass(frozen=True)
class Verdicts:
    """The verifier's answer for one group: per response, overall flag, share met, per-constraint
    outcomes.

    `passed[i]`: no checked constraint of response i failed; `passed_fraction[i]`:
    passed / checked constraints (unchecked ones are left out of both).
    """

    passed: tuple[bool, ...]
    passed_fraction: tuple[float, ...]
    details: tuple[tuple[ConstraintOutcome, ...], ...] = ()  # per response, in constraint order

    def failed_types(self, response: int) -> list[str]:
        """The types of the constraints response `response` failed."""
        if not self.details:
            return []
        return [o.type for o in self.details[response] if o.passed is False]


@dataclass(frozen=True)
class WritingScores:
    """The judge's answer for one group: scores w in [0, 1] and the verdict entropies."""

    scores: tuple[float, ...]
    entropies: tuple[float, ...] = ()
    position_consistency: float | None = None


@dataclass(frozen=True)
class ScoredGroup:
    """One prompt's group with what the verifier and the judge said about it: the input of its
    rewards."""

    group: Group
    verdicts: Verdicts
    writing: WritingScores | None  # None when the run has no writing judge (verifier_only)

    def __post_init__(self):
        n = len(self.group.responses)
        sizes = {
            "verdicts.passed": len(self.verdicts.passed),
            "verdicts.passed_fraction": len(self.verdicts.passed_fraction),
        }
        if self.writing is not None:
            sizes["writing.scores"] = len(self.writing.scores)
        wrong = {k: v for k, v in sizes.items() if v != n}
        if wrong:
            raise ValueError(f"prompt {self.group.row.id!r}: {n} responses but {wrong}")


@dataclass(frozen=True)
class RewardSignals:
    """`[groups, n]` float64 tensors the reward is mixed from: writing scores, pass flags, shares
    met."""

    writing: torch.Tensor
    passed: torch.Tensor  # bool
    passed_fraction: torch.Tensor

    @classmethod
    def of(cls, scored: Sequence[ScoredGroup]) -> RewardSignals:
        import torch

        passed = torch.tensor([s.verdicts.passed for s in scored], dtype=torch.bool)
        fraction = torch.tensor([s.verdicts.passed_fraction for s in scored], dtype=torch.float64)
        if any(s.writing is None for s in scored):
            writing = torch.zeros(passed.shape, dtype=torch.float64)
        else:
            writing = torch.tensor([s.writing.scores for s in scored], dtype=torch.float64)
        return cls(writing, passed, fraction)


@dataclass(frozen=True)
class TokenBatch:
    """Padded prompt + response sequences. Sequence axis right-padded.

    Per-token tensors are aligned with *targets* (`input_ids[:, 1:]`), so they
    have `T - 1` columns; `response_mask` marks response tokens there.
    """

    input_ids: torch.Tensor  # [B, T] long
    attention_mask: torch.Tensor  # [B, T] long
    response_mask: torch.Tensor  # [B, T-1] bool
    rollout_logprobs: torch.Tensor  # [B, T-1] float (0 outside the response): the rollout engine's

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    def select(self, index):
        """The rows `index` (a slice or an index tensor) of every tensor, as the same record
        type."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return type(self)(**{k: None if v is None else v[index] for k, v in values.items()})

    def compact(self):
        """The same record with every tensor in a storage of its own size (a copy only where a
        tensor is a slice of a larger one). Send this, not a slice, to another process: a pickled
        slice carries its parent's whole storage, so `n` shards of a batch would cost `n` batches.
        """
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return type(self)(**{k: _compact(v) for k, v in values.items()})

    def split(self, parts: int) -> list:
        """`parts` equal, contiguous slices (the batch must divide)."""
        if len(self) % parts:
            raise ValueError(f"cannot split a batch of {len(self)} into {parts} equal parts")
        size = len(self) // parts
        return [self.select(slice(i * size, (i + 1) * size)) for i in range(parts)]

    def chunks(self, parts: int) -> list:
        """At most `parts` contiguous, nearly equal, non-empty slices (order kept): work for
        replicas."""
        return [
            self.select(slice(c[0], c[-1] + 1)) for c in split_evenly(list(range(len(self))), parts)
        ]

    @classmethod
    def from_groups(cls, groups: Sequence[Group], pad_token_id: int) -> TokenBatch:
        """Flatten groups (response-major within each group) into one right-padded batch."""
        import torch

        seqs, resp_starts, lps = [], [], []
        for group in groups:
            if not group.prompt_token_ids:
                raise ValueError(
                    f"prompt {group.row.id!r}: empty prompt token ids "
                    "(a prompt needs at least one token)"
                )
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
        return cls(
            input_ids=input_ids,
            attention_mask=attention,
            response_mask=resp_mask,
            rollout_logprobs=rollout_lp,
        )


@dataclass(frozen=True)
class TrainBatch(TokenBatch):
    """What the learner consumes: the sequences with their advantages, built once, never changed."""

    advantages: torch.Tensor  # [B] float32, one per sequence
    ref_logprobs: torch.Tensor | None = None  # [B, T-1]: the frozen reference's (KL in the loss)
    old_logprobs: torch.Tensor | None = (
        None  # [B, T-1]: the learner's before the update (several updates)
    )

    def __post_init__(self):
        b, t = len(self), self.input_ids.shape[1] - 1
        if tuple(self.advantages.shape) != (b,):
            raise ValueError(
                f"advantages: expected shape [{b}], got {tuple(self.advantages.shape)}"
            )
        for name in ("response_mask", "rollout_logprobs", "ref_logprobs", "old_logprobs"):
            value = getattr(self, name)
            if value is not None and tuple(value.shape) != (b, t):
                raise ValueError(f"{name}: expected shape [{b}, {t}], got {tuple(value.shape)}")

    @classmethod
    def of(
        cls, tokens: TokenBatch, advantages: torch.Tensor, ref_logprobs: torch.Tensor | None = None
    ) -> TrainBatch:
        """`tokens` with one advantage per sequence (`[groups, n]` advantages are flattened in
        order)."""
        import torch

        return cls(
            input_ids=tokens.input_ids,
            attention_mask=tokens.attention_mask,
            response_mask=tokens.response_mask,
            rollout_logprobs=tokens.rollout_logprobs,
            advantages=advantages.reshape(-1).to(torch.float32),
            ref_logprobs=ref_logprobs,
        )


def _compact(t: torch.Tensor | None) -> torch.Tensor | None:
    import torch

    if t is None or (
        t.is_contiguous() and t.untyped_storage().nbytes() == t.numel() * t.element_size()
    ):
        return t
    return t.clone(memory_format=torch.contiguous_format)


def split_evenly(items: list, parts: int) -> list[list]:
    """Split into at most `parts` contiguous, nearly equal, non-empty lists (order kept)."""
    parts = max(1, min(parts, len(items)))
    size, extra = divmod(len(items), parts)
    out, start = [], 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        out.append(items[start:end])
        start = end
    return out

"""Supervised fine-tuning on distilled judgments (`rlmr sft`), with the policy learner.

A batch of SFT rows becomes the same padded sequences GRPO trains on: the row's
prompt (exact text, no template added) and its completion, then the end of
sequence, with the response mask on the completion tokens only. Every
sequence gets advantage 1 and the learner's old log-probs equal its current
ones, so the clipped GRPO loss is exactly the token-mean negative
log-likelihood of the completions and its gradient the cross-entropy gradient:
SFT runs on the same learner, checkpoints and resume as `rlmr train`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from rlmr.core.records import Group, PromptRow, Response, TokenBatch, TrainBatch
from rlmr.data.pairs import SFTRow


def sft_groups(rows: Sequence[SFTRow], tokenizer) -> list[Group]:
    """One single-response group per row; the completion is tokenized on its own and ends with
    the end-of-sequence token, so the judge learns to stop after its verdict."""
    groups = []
    for row in rows:
        prompt_ids = tuple(tokenizer(row.prompt, add_special_tokens=False)["input_ids"])
        completion = list(tokenizer(row.completion, add_special_tokens=False)["input_ids"])
        if tokenizer.eos_token_id is not None:
            completion.append(tokenizer.eos_token_id)
        response = Response(row.completion, tuple(completion), (0.0,) * len(completion), "stop")
        groups.append(
            Group(
                PromptRow(id=row.id, prompt=row.prompt, text=row.prompt),
                row.prompt,
                prompt_ids,
                (response,),
            )
        )
    return groups


def sft_batch(rows: Sequence[SFTRow], tokenizer, pad_token_id: int) -> TrainBatch:
    """The rows as one learner batch, every sequence with advantage 1."""
    tokens = TokenBatch.from_groups(sft_groups(rows, tokenizer), pad_token_id)
    return TrainBatch.of(tokens, torch.ones(len(rows)))


def sft_steps(rows: int, epochs: float, batch: int, max_steps: int) -> int:
    """Steps to see every row `epochs` times in batches of `batch` (at most `max_steps`)."""
    return max(1, min(max_steps, -(-int(rows * epochs) // batch)))


def sft_step(cfg, services, sampler, step: int, *, tokenizer) -> tuple[dict, list[dict]]:
    """One supervised step on `rollout.prompts_per_step * rollout.n` rows (the learner's batch)."""
    from rlmr.training.metrics import PhaseTimer

    timer = PhaseTimer()
    rows = sampler.take(cfg.rollout.prompts_per_step * cfg.rollout.n)
    batch = sft_batch(rows, tokenizer, services.pad_token_id)
    with timer("update"):
        stats = services.update_policy(batch)
    metrics = {
        "sft/nll": stats["nll"],
        "sft/tokens": int(batch.response_mask.sum()),
        **stats,
        **timer.times,
        "time/step_s": timer.elapsed(),
    }
    samples = [
        {"id": r.id, "completion": r.completion} for r in rows[: cfg.logging.samples_per_step]
    ]
    return metrics, samples

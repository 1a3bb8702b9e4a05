"""Prompt data: loading and validating prompt rows, and a resumable, seeded sampler.

Rows carry `prompt` (text or chat messages), `constraints` (a list of
`{"type": ..., **kwargs}` checked by the verifier's registry), and optional
`context`, `reference`, `id`. Files load with `datasets` from JSONL, Parquet or
a saved dataset folder. Every bad row is reported with its file and row
number before any training starts, so nothing is lost to a typo at step 500.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from rlmr.core.records import PromptRow
from rlmr.data.files import DataError, read_rows, summary

ALLOWED_KEYS = {"id", "prompt", "constraints", "context", "reference"}


def _check_messages(value) -> str | None:
    if not isinstance(value, list) or not value:
        return "chat prompt must be a non-empty list of {role, content} messages"
    for i, m in enumerate(value):
        if (
            not isinstance(m, dict)
            or set(m) - {"role", "content"}
            or not isinstance(m.get("content"), str)
        ):
            return f"message {i} must be {{role, content}} with string content"
        if m.get("role") not in ("system", "user", "assistant"):
            return f"message {i} has role {m.get('role')!r}; expected system, user or assistant"
    return None


def parse_rows(
    raw: Sequence[dict], source: str, check_constraints: Callable[[list], None] | None = None
) -> list[PromptRow]:
    """Validate raw rows into `PromptRow`s; raises `DataError` listing every bad row."""
    rows, errors, seen = [], [], {}
    for idx, r in enumerate(raw):
        where = f"{source}:{r.get('__line__', idx + 1)}"
        r = {k: v for k, v in r.items() if k != "__line__"}
        extra = sorted(set(r) - ALLOWED_KEYS)
        if extra:
            errors.append(
                f"{where}: unknown key(s) {', '.join(extra)}; "
                f"allowed: {', '.join(sorted(ALLOWED_KEYS))}"
            )
            continue
        prompt = r.get("prompt")
        if isinstance(prompt, str):
            if not prompt.strip():
                errors.append(f"{where}: prompt: empty")
                continue
        elif isinstance(prompt, list):
            problem = _check_messages(prompt)
            if problem:
                errors.append(f"{where}: prompt: {problem}")
                continue
            prompt = tuple(dict(m) for m in prompt)
        else:
            errors.append(f"{where}: prompt: required, text or a list of chat messages")
            continue
        constraints = r.get("constraints") or []
        if not isinstance(constraints, list) or not all(
            isinstance(c, dict) and "type" in c for c in constraints
        ):
            errors.append(f'{where}: constraints: must be a list of {{"type": ..., ...}} objects')
            continue
        # Parquet / saved datasets store constraints as one struct type: drop the null fields.
        constraints = [{k: v for k, v in c.items() if v is not None} for c in constraints]
        if check_constraints is not None:
            try:
                check_constraints(constraints)
            except ValueError as exc:
                errors.append(f"{where}: constraints: {exc}")
                continue
        for key in ("context", "reference"):
            if r.get(key) is not None and not isinstance(r[key], str):
                errors.append(f"{where}: {key}: must be text")
                break
        else:
            row_id = str(r["id"]) if r.get("id") is not None else f"{Path(source).stem}-{idx}"
            if row_id in seen:
                errors.append(f"{where}: id: {row_id!r} repeats the id of {seen[row_id]}")
                continue
            seen[row_id] = where
            rows.append(
                PromptRow(
                    id=row_id,
                    prompt=prompt,
                    constraints=tuple(constraints),
                    context=r.get("context"),
                    reference=r.get("reference"),
                )
            )
    if errors:
        raise DataError(summary(errors))
    if not rows:
        raise DataError(f"{source}: no prompt rows")
    return rows


def load_prompts(
    path: str | Path, check_constraints: Callable[[list], None] | None = None
) -> list[PromptRow]:
    """Load and validate a prompt file or dataset folder."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: prompt file not found")
    return parse_rows(read_rows(p), str(p), check_constraints)


def check_prompt_rows(
    rows: Sequence[PromptRow],
    source: str,
    count_tokens: Callable[[PromptRow], int],
    max_tokens: int,
    need_reference: bool = False,
) -> None:
    """Refuse, before any model starts, prompts the run cannot use: longer than `max_tokens` once
    formatted (`count_tokens` applies the chat template), or without the `reference` the judge's
    strategy needs."""
    errors = []
    for r in rows:
        n = count_tokens(r)
        if n > max_tokens:
            errors.append(
                f"{source}: id {r.id!r}: prompt is {n} tokens with the chat template; "
                f"data.max_prompt_tokens is {max_tokens}"
            )
        if need_reference and not r.reference:
            errors.append(
                f"{source}: id {r.id!r}: "
                "reference: required by reward.writing.group_strategy: reference"
            )
    if errors:
        raise DataError(summary(errors))


class PromptSampler:
    """Epoch-wise seeded shuffling with a saved position, so `--resume` sees the same order."""

    def __init__(self, rows: Sequence[PromptRow], seed: int = 0, shuffle: bool = True):
        if not rows:
            raise DataError("no prompts to sample from")
        self.rows = list(rows)
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = 0
        self.position = 0
        self._order = self._permutation(0)

    def _permutation(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(len(self.rows))
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.rows))

    def take(self, k: int) -> list[PromptRow]:
        out = []
        while len(out) < k:
            if self.position == len(self.rows):
                self.epoch += 1
                self.position = 0
                self._order = self._permutation(self.epoch)
            out.append(self.rows[int(self._order[self.position])])
            self.position += 1
        return out

    def state_dict(self) -> dict:
        return {
            "epoch": self.epoch,
            "position": self.position,
            "seed": self.seed,
            "size": len(self.rows),
        }

    def load_state_dict(self, state: dict) -> None:
        if state.get("size") != len(self.rows) or state.get("seed") != self.seed:
            raise DataError(
                f"checkpoint's data position is for {state.get('size')} prompts "
                f"with seed {state.get('seed')}, "
                f"but the config loads {len(self.rows)} prompts with seed {self.seed}"
            )
        self.epoch = int(state["epoch"])
        self.position = int(state["position"])
        self._order = self._permutation(self.epoch)

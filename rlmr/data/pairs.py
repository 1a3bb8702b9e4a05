"""Labelled preference pairs, for training and evaluating the judge.

A row has `prompt`, `chosen` and `rejected` (texts; `chosen` is the better
response), and optionally `context` (outline, characters, earlier plot),
`rationale` (why `chosen` is better), `label_source` (who decided: `human`,
`degradation`, `strong_vs_weak`, ...), `kind` (the family a pair belongs to,
for per-family figures) and `id`. Files load like prompt sets (JSONL, Parquet,
a saved `datasets` folder); every bad row is refused with its file and row
before any model starts: a missing or empty field, a value that is not text,
an unknown key, `chosen` equal to `rejected`, an id used twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rlmr.data.files import DataError, read_rows, summary

REQUIRED = ("prompt", "chosen", "rejected")
OPTIONAL = ("context", "rationale", "label_source", "kind", "id")


@dataclass(frozen=True)
class PreferencePair:
    """One labelled comparison: `chosen` is better than `rejected` for `prompt`."""

    id: str
    prompt: str
    chosen: str
    rejected: str
    context: str | None = None
    rationale: str | None = None
    label_source: str = ""
    kind: str = ""

    def to_dict(self) -> dict:
        row = {
            "id": self.id,
            "prompt": self.prompt,
            "chosen": self.chosen,
            "rejected": self.rejected,
        }
        for key in ("context", "rationale", "label_source", "kind"):
            if getattr(self, key):
                row[key] = getattr(self, key)
        return row


def parse_pairs(raw: Sequence[dict], source: str) -> list[PreferencePair]:
    """Validate raw rows into pairs; raises `DataError` listing every bad row."""
    pairs, errors, seen = [], [], {}
    for index, row in enumerate(raw):
        where = f"{source}:{row.get('__line__', index + 1)}"
        row = {k: v for k, v in row.items() if k != "__line__" and v is not None}
        unknown = sorted(set(row) - set(REQUIRED) - set(OPTIONAL))
        if unknown:
            allowed = ", ".join(REQUIRED + OPTIONAL)
            errors.append(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {allowed}")
            continue
        problem = next(
            (
                f"{k}: required text is missing or empty"
                for k in REQUIRED
                if not isinstance(row.get(k), str) or not row[k].strip()
            ),
            None,
        )
        problem = problem or next(
            (
                f"{k}: must be text"
                for k in OPTIONAL
                if k in row and k != "id" and not isinstance(row[k], str)
            ),
            None,
        )
        if problem is None and row["chosen"].strip() == row["rejected"].strip():
            problem = "chosen and rejected are the same text; the pair carries no preference"
        pair_id = str(row.get("id", f"{Path(source).stem}-{index}"))
        if problem is None and pair_id in seen:
            problem = f"id: {pair_id!r} repeats the id of {seen[pair_id]}"
        if problem:
            errors.append(f"{where}: {problem}")
            continue
        seen[pair_id] = where
        pairs.append(
            PreferencePair(
                id=pair_id,
                prompt=row["prompt"],
                chosen=row["chosen"],
                rejected=row["rejected"],
                context=row.get("context") or None,
                rationale=row.get("rationale") or None,
                label_source=row.get("label_source", ""),
                kind=row.get("kind", ""),
            )
        )
    if errors:
        raise DataError(summary(errors))
    if not pairs:
        raise DataError(f"{source}: no preference pairs")
    return pairs


def load_pairs(path: str | Path) -> list[PreferencePair]:
    """Load and validate a preference-pair file or dataset folder."""
    p = Path(path)
    return parse_pairs(read_rows(p), str(p))


@dataclass(frozen=True)
class SFTRow:
    """One supervised example: the exact `prompt` text and the `completion` to learn to write."""

    id: str
    prompt: str
    completion: str


def load_sft_rows(path: str | Path) -> list[SFTRow]:
    """SFT rows (`rlmr genrm distill` writes them): `prompt` and `completion` texts, optional
    `id`; every bad row is refused with its file and line."""
    p = Path(path)
    rows, errors, seen = [], [], {}
    for index, row in enumerate(read_rows(p)):
        where = f"{p}:{row.get('__line__', index + 1)}"
        unknown = sorted(set(row) - {"id", "prompt", "completion", "__line__"})
        missing = [
            k
            for k in ("prompt", "completion")
            if not isinstance(row.get(k), str) or not row[k].strip()
        ]
        row_id = str(row.get("id", f"{p.stem}-{index}"))
        if unknown:
            errors.append(
                f"{where}: unknown key(s) {', '.join(unknown)}; allowed: id, prompt, completion"
            )
        elif missing:
            errors.append(f"{where}: {missing[0]}: required text is missing or empty")
        elif row_id in seen:
            errors.append(f"{where}: id: {row_id!r} repeats the id of {seen[row_id]}")
        else:
            seen[row_id] = where
            rows.append(SFTRow(row_id, row["prompt"], row["completion"]))
    if errors:
        raise DataError(summary(errors))
    if not rows:
        raise DataError(f"{p}: no SFT rows")
    return rows

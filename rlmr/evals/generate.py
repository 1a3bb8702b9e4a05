"""Batched generation that survives interruption: responses are appended to a JSONL file as each
batch finishes, and a rerun generates only the prompts that file does not answer yet."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from rlmr.core.records import PromptRow
from rlmr.engine.base import SamplingParams


class EvalError(ValueError):
    """Bad input or a resume that would mix settings; the message names the file or key."""


def read_done(path: Path) -> dict[str, list[dict]]:
    """`prompt id -> its response records` already written; a last line cut short by a kill is
    dropped (and rewritten)."""
    done: dict[str, list[dict]] = {}
    if not path.exists():
        return done
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    keep = []
    for i, line in enumerate(lines):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if i == len(lines) - 1:  # the interrupted write: forget it
                break
            raise EvalError(
                f"{path}:{i + 1}: not valid JSON; delete the file to start over"
            ) from None
        keep.append(line)
        done.setdefault(record["id"], []).append(record)
    if len(keep) != len(lines):
        path.write_text("".join(keep), encoding="utf-8")
    return done


def keep_complete(path: Path, done: dict[str, list[dict]], expected: dict[str, int]) -> dict:
    """`done` without the ids that have fewer or more records than `expected` says (a batch cut
    by a kill between two records); the file is rewritten without them so they are redone whole
    and once."""
    whole = {k: v for k, v in done.items() if len(v) == expected.get(k, -1)}
    if len(whole) != len(done):
        lines = [json.dumps(r, ensure_ascii=False) + "\n" for v in whole.values() for r in v]
        path.write_text("".join(lines), encoding="utf-8")
    return whole


def check_settings(path: Path, settings: dict) -> None:
    """Refuse to resume into responses made with other settings (model, sampling, limit...)."""
    if path.exists():
        saved = json.loads(path.read_text(encoding="utf-8"))
        changed = sorted(k for k in set(saved) | set(settings) if saved.get(k) != settings.get(k))
        if changed:
            raise EvalError(
                f"{path}: the responses there were made with other settings "
                f"({', '.join(f'{k}: {saved.get(k)!r} -> {settings.get(k)!r}' for k in changed)}); "
                "use another --out or delete it"
            )
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(settings, indent=1, sort_keys=True), encoding="utf-8")


def as_sampler(source, chat_template: bool = True):
    """`sample(rows, params) -> groups` from a `TextEngine` (an evaluation of a model folder), or
    `source` itself when it already is one (`Services.sample`: the rollout engines of a run)."""
    if source is None or not hasattr(source, "generate"):
        return source
    from rlmr.training.rollout import sample_groups

    def sample(rows, params):
        return sample_groups(source, rows, params, chat_template=chat_template)

    return sample


def generate(
    engine,
    rows: Sequence[PromptRow],
    params: SamplingParams,
    out: Path,
    *,
    chat_template: bool = True,
    batch_prompts: int = 16,
    desc: str = "eval",
    progress: bool = True,
) -> dict[str, list[dict]]:
    """`params.n` responses per row (`prompt id -> records`, each with `sample`, `response`,
    `tokens`, `finish_reason`), reusing what `out` already holds. `engine`: a `TextEngine` or a
    sampler (see `as_sampler`)."""
    sample = as_sampler(engine, chat_template)
    ids = [r.id for r in rows]
    if len(set(ids)) != len(ids):
        raise EvalError(f"{desc}: prompt ids repeat; each prompt needs its own id")

    def answer(chunk: list[PromptRow]) -> list[list[dict]]:
        groups = sample(chunk, params)
        return [
            [
                {
                    "id": row.id,
                    "sample": i,
                    "response": r.text,
                    "tokens": len(r.token_ids),
                    "finish_reason": r.finish_reason,
                }
                for i, r in enumerate(group.responses)
            ]
            for row, group in zip(chunk, groups)
        ]

    return append_batches(
        out,
        rows,
        ids,
        [params.n] * len(rows),
        lambda: answer,
        batch=batch_prompts,
        desc=desc,
        progress=progress,
    )


def append_batches(
    path: Path,
    items: Sequence,
    ids: Sequence[str],
    expected: Sequence[int],
    make_work: Callable[[], Callable[[list], list[list[dict]]]],
    *,
    batch: int = 16,
    desc: str = "eval",
    progress: bool = True,
) -> dict[str, list[dict]]:
    """`id -> its records`, for work that survives interruption: the records `path` already holds
    for an item (exactly `expected` of them) are kept; the other items go, `batch` at a time, to
    the function `make_work()` returns (built only when there is work left), which gives one list
    of records per item; each batch is appended and synced before the next starts."""
    done = keep_complete(path, read_done(path), dict(zip(ids, expected)))
    todo = [(i, item) for i, item in zip(ids, items) if i not in done]
    if not todo:
        return done
    work = make_work()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(items), initial=len(items) - len(todo), desc=desc, unit="prompt")
    try:
        for start in range(0, len(todo), batch):
            chunk = todo[start : start + batch]
            results = work([item for _, item in chunk])
            with path.open("a", encoding="utf-8") as fh:
                for (i, _), records in zip(chunk, results):
                    done[i] = records
                    fh.write("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in records))
                fh.flush()
                os.fsync(fh.fileno())
            if bar is not None:
                bar.update(len(chunk))
    finally:
        if bar is not None:
            bar.close()
    return done

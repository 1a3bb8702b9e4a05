"""Reading JSONL with line numbers: every reader of user files reports bad lines the same way.

    for line in iter_jsonl(path):
        if line.problem: report(f"{path}:{line.number}: {line.problem}")
        else: use(line.row)

A line that is not valid JSON, not a JSON object, or not valid UTF-8 yields its
problem instead of raising, so the caller can name it and keep reading. With
`bad_utf8="replace"` undecodable bytes become U+FFFD and the line is marked
`repaired` instead (for text where a stray byte should not cost the row).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Literal, NamedTuple


class JsonlLine(NamedTuple):
    number: int  # 1-based line number in the file
    row: dict | None  # the object, or None when the line has a problem
    problem: str | None = None  # what is wrong with the line
    repaired: bool = False  # undecodable bytes were replaced (bad_utf8="replace")


def iter_jsonl(
    path: str | Path, bad_utf8: Literal["problem", "replace"] = "problem"
) -> Iterator[JsonlLine]:
    """Every non-blank line of `path`, parsed; problems are yielded, never raised."""
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            repaired = False
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                if bad_utf8 == "problem":
                    yield JsonlLine(
                        number,
                        None,
                        f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})",
                    )
                    continue
                text, repaired = raw.decode("utf-8", errors="replace"), True
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                yield JsonlLine(number, None, f"not valid JSON ({exc.msg})", repaired)
                continue
            if not isinstance(obj, dict):
                yield JsonlLine(
                    number, None, f"expected a JSON object, got {type(obj).__name__}", repaired
                )
                continue
            yield JsonlLine(number, obj, None, repaired)


def read_jsonl(path: str | Path) -> list[dict]:
    """Every object of a file the project wrote itself; the first bad line raises `ValueError`
    naming it."""
    rows = []
    for line in iter_jsonl(path):
        if line.problem:
            raise ValueError(f"{path}:{line.number}: {line.problem}")
        rows.append(line.row)
    return rows

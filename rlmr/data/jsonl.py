"""Reading JSONL with line numbers: every reader of user files reports bad lines the same way."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict | None, str | None]]:
    """Yield `(line_number, object, None)` for each JSON object line, or `(line_number, None, problem)`.

    Blank lines are skipped; a line that is not valid JSON, or not an object, yields its problem so the
    caller can report it and keep going with the other lines.
    """
    with open(path, encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                yield line_no, None, f"not valid JSON ({exc.msg})"
                continue
            if not isinstance(obj, dict):
                yield line_no, None, f"expected a JSON object, got {type(obj).__name__}"
                continue
            yield line_no, obj, None

"""Reading user data files: JSONL, JSON, Parquet or a saved `datasets` folder, as row dicts.

Every reader of user data (prompt sets, preference pairs) goes through
`read_rows`, so bad files and bad lines are reported the same way: a
`DataError` naming the file and line numbers, raised before any model starts.
JSONL rows carry their line number under `__line__` for the row checks.
"""

from __future__ import annotations

from pathlib import Path


class DataError(ValueError):
    """A data file is unreadable or has bad rows; the message names file and rows."""


def read_rows(path: Path) -> list[dict]:
    """Rows of a JSONL/JSON/Parquet file or a `save_to_disk` folder. JSONL and JSON are read
    line by line here; Parquet and dataset folders through `datasets`, imported only for them
    (with pandas and pyarrow it adds about 100 MiB to the process that reads, the driver)."""
    if not path.exists():
        raise DataError(f"{path}: file not found")
    suffix = path.suffix.lower()
    if not path.is_dir() and suffix in (".jsonl", ".json"):
        return _read_jsonl(path)
    if not path.is_dir() and suffix != ".parquet":
        raise DataError(
            f"{path}: unsupported file type {suffix!r}; use .jsonl, .parquet or a saved dataset "
            "folder"
        )
    import datasets

    datasets.disable_progress_bars()
    if path.is_dir():
        try:
            ds = datasets.load_from_disk(str(path))
        except Exception as exc:  # datasets raises several types for a folder that is not a dataset
            raise DataError(f"{path}: not a saved dataset folder ({exc})") from None
        if isinstance(ds, datasets.DatasetDict):
            if "train" not in ds:
                raise DataError(
                    f"{path}: dataset has splits {list(ds)}, expected one or a 'train' split"
                )
            ds = ds["train"]
        return ds.to_list()
    return datasets.load_dataset("parquet", data_files=str(path), split="train").to_list()


def _read_jsonl(path: Path) -> list[dict]:
    # Read line by line ourselves rather than with datasets' JSON loader: a broken
    # line is reported with its number, and constraint objects keep their own keys
    # (Arrow would unify them into one struct with nulls for every other kwarg).
    from rlmr.data.jsonl import iter_jsonl

    rows, errors = [], []
    for lineno, row, problem, _ in iter_jsonl(path):
        if problem:
            errors.append(f"{path}:{lineno}: {problem}")
            continue
        row["__line__"] = lineno
        rows.append(row)
    if errors:
        raise DataError(summary(errors))
    return rows


def summary(errors: list[str], limit: int = 20) -> str:
    """All problems in one message (the first `limit` listed)."""
    more = f"\n  ... and {len(errors) - limit} more" if len(errors) > limit else ""
    return f"{len(errors)} bad row(s):\n  " + "\n  ".join(errors[:limit]) + more

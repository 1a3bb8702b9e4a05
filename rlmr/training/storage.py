"""Run storage on a local path, NFS, or an object store URI (s3://, gs://, az://, file://...)
through fsspec.

Training always writes to a local directory first (DeepSpeed and
`save_pretrained` need real files). When `logging.output_dir` is a URI, the
run directory is mirrored there: every process uploads the files it wrote
(each learner rank its own optimizer shard), and the checkpoint pointer
`checkpoints/latest` is written last, so a checkpoint becomes visible only
once it is whole. `--resume` downloads the pointed-to checkpoint first.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def is_remote(path: str) -> bool:
    return "://" in str(path)


def join(base: str, *parts: str) -> str:
    return "/".join([str(base).rstrip("/"), *[p.strip("/") for p in parts]])


def _fs(uri: str):
    import fsspec

    fs, root = fsspec.core.url_to_fs(uri)
    return fs, root


def local_mirror(uri: str) -> Path:
    """The local directory that stands for `uri` on this machine (under $RLMR_CACHE)."""
    digest = hashlib.sha256(uri.encode()).hexdigest()[:16]
    base = Path(os.environ.get("RLMR_CACHE") or Path.home() / ".cache" / "rlmr").expanduser()
    return base / "remote-runs" / digest


def upload_file(local: Path, uri: str) -> None:
    fs, root = _fs(uri)
    fs.makedirs(os.path.dirname(root), exist_ok=True)
    fs.put_file(str(local), root)


def upload_files(local_root: Path, files: list[Path], uri_root: str) -> int:
    """Upload `files` (under `local_root`) to the same relative paths under `uri_root`."""
    for f in files:
        upload_file(f, join(uri_root, str(f.relative_to(local_root))))
    return len(files)


def upload_tree(local_root: Path, uri_root: str) -> int:
    return upload_files(
        local_root, sorted(p for p in Path(local_root).rglob("*") if p.is_file()), uri_root
    )


def download_tree(uri_root: str, local_root: Path) -> int:
    """Copy every file under `uri_root` to `local_root` (replacing what is there)."""
    fs, root = _fs(uri_root)
    if not fs.exists(root):
        return 0
    count = 0
    for path in fs.find(root):
        rel = path[len(root.rstrip("/")) + 1 :]
        dest = Path(local_root) / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        fs.get_file(path, str(dest))
        count += 1
    return count


def read_text(uri: str) -> str | None:
    fs, root = _fs(uri)
    if not fs.exists(root):
        return None
    with fs.open(root, "r") as fh:
        return fh.read()


def write_text(uri: str, text: str) -> None:
    fs, root = _fs(uri)
    fs.makedirs(os.path.dirname(root), exist_ok=True)
    with fs.open(root, "w") as fh:
        fh.write(text)


def exists(uri: str) -> bool:
    fs, root = _fs(uri)
    return fs.exists(root)


def move(src_uri: str, dst_uri: str) -> None:
    fs, src = _fs(src_uri)
    _, dst = _fs(dst_uri)
    fs.makedirs(os.path.dirname(dst), exist_ok=True)
    fs.mv(src, dst, recursive=True)


def list_names(uri: str) -> list[str]:
    """Names of the entries directly under `uri` (empty when it does not exist)."""
    fs, root = _fs(uri)
    if not fs.exists(root):
        return []
    return sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(root, detail=False))


def remove_tree(uri: str) -> None:
    fs, root = _fs(uri)
    if fs.exists(root):
        fs.rm(root, recursive=True)

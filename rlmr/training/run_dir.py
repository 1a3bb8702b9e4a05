"""The run directory: resolved config, metrics, samples, TensorBoard/W&B, atomic checkpoints,
curves.

    runs/<run_name>/
      config.yaml                 the resolved config this run used
      metrics.jsonl               one line per step (and eval lines with "eval/..." keys)
      samples.jsonl               a few full responses per step
      tb/                         TensorBoard events
      curves.png                  training curves, redrawn at every checkpoint and at the end
      checkpoints/step_000010/    policy/ (HF format), optimizer/ (DeepSpeed), trainer_state.json
      checkpoints/latest          name of the newest complete checkpoint

A checkpoint is written into `step_N.tmp/` and renamed when complete, and only
then does `latest` move, so a crash mid-save never leaves a checkpoint that
looks whole. Starting a run in a directory that already has checkpoints,
without `--resume`, is refused rather than overwriting them. When
`logging.output_dir` is an fsspec URI (s3://, gs://, file://...), the run
lives in a local mirror and is uploaded as it goes (`rlmr.training.storage`); the
remote `checkpoints/latest` moves last, after every file of the checkpoint.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

from rlmr.config import RLMRConfig, save_resolved
from rlmr.data.jsonl import read_jsonl
from rlmr.training import storage

CHECKPOINT_PREFIX = "step_"


class RunDirError(RuntimeError):
    """The run directory cannot be used as asked (exists without --resume, nothing to resume...)."""


# Keys that decide which prompts each step reads: a resume that changed one would not continue the
# run it claims to continue.
DATA_ORDER_KEYS = (
    "data.train",
    "data.seed",
    "data.shuffle",
    "rollout.prompts_per_step",
    "rollout.dynamic_sampling",
)


def _flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def check_resume_config(saved: Path, cfg: RLMRConfig) -> dict[str, tuple]:
    """Compare the config a run was started with (`saved`, its config.yaml) with the one resuming
    it. A change to the data order is refused, naming the keys; other changes are returned as
    `key -> (before, after)` (and printed), the new config replacing the saved one."""
    import sys

    import yaml

    from rlmr.config.loading import to_dict

    if not saved.is_file():
        return {}
    before = _flat(yaml.safe_load(saved.read_text(encoding="utf-8")) or {})
    after = _flat(to_dict(cfg))
    changed = {
        k: (before.get(k), after.get(k))
        for k in sorted(set(before) | set(after))
        if before.get(k) != after.get(k)
    }
    order = {k: v for k, v in changed.items() if k in DATA_ORDER_KEYS}
    if order:
        listed = ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in order.items())
        raise RunDirError(
            f"--resume: the config changes the data order of {saved.parent} ({listed}); resume "
            f"with the run's own config ({saved}) or start a new run"
        )
    if changed:
        listed = ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in changed.items())
        print(f"rlmr: resuming with a changed config: {listed}", file=sys.stderr)
    return changed


class RunDir:
    """Owns every file of one run; the driver calls it, nothing else writes there."""

    def __init__(self, cfg: RLMRConfig, resume: bool | str = False):
        """`resume`: False (refuse an existing run), True (require a checkpoint), "auto" (resume if
        there is one)."""
        self.cfg = cfg
        out = cfg.logging.output_dir
        self.uri = storage.join(out, cfg.logging.run_name) if storage.is_remote(out) else None
        self.path = storage.local_mirror(self.uri) if self.uri else Path(out) / cfg.logging.run_name
        self.ckpt_root = self.path / "checkpoints"
        where = self.uri or self.path
        has_ckpt = (
            self._remote_latest() is not None if self.uri else self.latest_checkpoint() is not None
        )
        started = (
            storage.exists(storage.join(self.uri, "metrics.jsonl"))
            if self.uri
            else (self.path / "metrics.jsonl").exists()
        )
        if resume == "auto":
            resume = has_ckpt
            if not has_ckpt and started:  # a retry of a job that died before its first checkpoint
                self._set_aside_unfinished()
                started = False
        self.resuming = bool(resume)
        if not resume and (has_ckpt or started):
            raise RunDirError(
                f"{where} already holds a run; pass --resume to continue it, or choose another "
                f"logging.run_name / logging.output_dir"
            )
        if resume and not has_ckpt:
            raise RunDirError(f"--resume: {where} has no complete checkpoint to resume from")
        if self.uri:
            shutil.rmtree(self.path, ignore_errors=True)  # the remote copy is the truth
            if resume:
                self._download_for_resume()
        if resume:
            self.resume_changes = check_resume_config(self.path / "config.yaml", cfg)
        try:  # before any actor starts: a directory that cannot be written is a one-line error
            self.path.mkdir(parents=True, exist_ok=True)
            self.ckpt_root.mkdir(exist_ok=True)
            save_resolved(cfg, self.path / "config.yaml")
        except OSError as err:
            raise RunDirError(
                f"logging.output_dir: cannot write the run directory {self.path} "
                f"({err.strerror or err})"
            ) from None
        self._upload("config.yaml")
        self._tb = None
        self._wandb = None

    def _set_aside_unfinished(self) -> None:
        """Move the logs of an attempt that never checkpointed into `abandoned-<time>/` (kept, not
        deleted)."""
        import time

        aside = f"abandoned-{int(time.time())}"
        for name in ("metrics.jsonl", "samples.jsonl", "tb", "curves.png"):
            if self.uri:
                src = storage.join(self.uri, name)
                if storage.exists(src):
                    storage.move(src, storage.join(self.uri, aside, name))
            elif (self.path / name).exists():
                (self.path / aside).mkdir(parents=True, exist_ok=True)
                (self.path / name).rename(self.path / aside / name)

    # ------------------------------------------------------------------ remote mirror

    def _remote_latest(self) -> str | None:
        name = storage.read_text(storage.join(self.uri, "checkpoints", "latest"))
        return name.strip() if name else None

    def _download_for_resume(self) -> None:
        name = self._remote_latest()
        storage.download_tree(storage.join(self.uri, "checkpoints", name), self.ckpt_root / name)
        (self.ckpt_root / "latest").write_text(name)
        for fname in ("metrics.jsonl", "samples.jsonl", "config.yaml"):
            text = storage.read_text(storage.join(self.uri, fname))
            if text is not None:
                (self.path / fname).write_text(text, encoding="utf-8")

    def _upload(self, *names: str) -> None:
        if not self.uri:
            return
        for name in names:
            p = self.path / name
            if p.is_file():
                storage.upload_file(p, storage.join(self.uri, name))
            elif p.is_dir():
                storage.upload_tree(p, storage.join(self.uri, name))

    def checkpoint_uri(self, step: int) -> str | None:
        """Where the learner ranks upload the files they write for this checkpoint (None for local
        runs)."""
        return (
            storage.join(self.uri, "checkpoints", f"{CHECKPOINT_PREFIX}{step:06d}")
            if self.uri
            else None
        )

    # ------------------------------------------------------------------ logging

    def open_loggers(self) -> None:
        if self.cfg.logging.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(log_dir=str(self.path / "tb"))
        if self.cfg.logging.wandb.enabled:
            if not os.environ.get("WANDB_API_KEY"):
                raise RunDirError(
                    "logging.wandb.enabled is true but WANDB_API_KEY is not set in the environment"
                )
            try:
                import wandb
            except ImportError:
                raise RunDirError(
                    "logging.wandb.enabled is true but the wandb package is not installed"
                ) from None
            w = self.cfg.logging.wandb
            self._wandb = wandb.init(
                project=w.project,
                entity=w.entity,
                name=self.cfg.logging.run_name,
                dir=str(self.path),
                config=self.cfg.model_dump(mode="json"),
                resume="allow",
            )

    def log(self, step: int, metrics: dict) -> None:
        """Append one metrics line (non-finite values are written as null) and mirror it to
        TB/W&B."""
        clean = {k: _finite_or_none(v) for k, v in metrics.items()}
        with (self.path / "metrics.jsonl").open("a", encoding="utf-8") as fh:
            fh.write(json.dumps({"step": step, **clean}, sort_keys=True) + "\n")
        if self._tb is not None:
            for k, v in clean.items():
                if _number(v):
                    self._tb.add_scalar(k, v, step)
            self._tb.flush()
        if self._wandb is not None:
            self._wandb.log({k: v for k, v in clean.items() if _number(v)}, step=step)

    def write_samples(self, step: int, samples: list[dict]) -> None:
        if not samples:
            return
        with (self.path / "samples.jsonl").open("a", encoding="utf-8") as fh:
            for s in samples:
                row = {"step": step, **{k: _finite_or_none(v) for k, v in s.items()}}
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")

    def read_metrics(self) -> list[dict]:
        p = self.path / "metrics.jsonl"
        if not p.exists():
            return []
        return read_jsonl(p)

    def truncate_after(self, step: int) -> None:
        """On resume, forget lines logged after the checkpoint (they will be produced again), and
        any line cut short by a crash mid-write."""

        def kept(line: str) -> bool:
            try:
                return json.loads(line).get("step", 0) <= step
            except json.JSONDecodeError:
                return False

        for name in ("metrics.jsonl", "samples.jsonl"):
            p = self.path / name
            if p.exists():
                keep = [
                    ln
                    for ln in p.read_text(encoding="utf-8").splitlines()
                    if ln.strip() and kept(ln)
                ]
                tmp = p.with_suffix(".tmp")
                tmp.write_text("".join(ln + "\n" for ln in keep), encoding="utf-8")
                tmp.replace(p)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()
        self._upload("metrics.jsonl", "samples.jsonl", "curves.png", "tb")

    # ------------------------------------------------------------------ checkpoints

    def checkpoint_dirs(self) -> list[Path]:
        if not self.ckpt_root.exists():
            return []
        dirs = [
            p
            for p in self.ckpt_root.iterdir()
            if p.is_dir()
            and p.name.startswith(CHECKPOINT_PREFIX)
            and p.name[len(CHECKPOINT_PREFIX) :].isdigit()
            and (p / "trainer_state.json").exists()
        ]
        return sorted(dirs, key=lambda p: int(p.name[len(CHECKPOINT_PREFIX) :]))

    def latest_checkpoint(self) -> Path | None:
        pointer = self.ckpt_root / "latest"
        if pointer.exists():
            p = self.ckpt_root / pointer.read_text().strip()
            if (p / "trainer_state.json").exists():
                return p
        dirs = self.checkpoint_dirs()
        return dirs[-1] if dirs else None

    def staging_dir(self, step: int) -> Path:
        """Where a checkpoint is written before it is made visible by `commit_checkpoint`."""
        tmp = self.ckpt_root / f"{CHECKPOINT_PREFIX}{step:06d}.tmp"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        return tmp

    def commit_checkpoint(self, staging: Path, step: int, trainer_state: dict) -> Path:
        (staging / "trainer_state.json").write_text(
            json.dumps(trainer_state, indent=1, sort_keys=True)
        )
        final = self.ckpt_root / f"{CHECKPOINT_PREFIX}{step:06d}"
        if final.exists():
            shutil.rmtree(final)
        staging.rename(final)
        pointer = self.ckpt_root / "latest.tmp"
        pointer.write_text(final.name)
        stale = self.checkpoint_dirs()[: -self.cfg.checkpoint.keep_last]
        if (
            self.uri
        ):  # learner ranks uploaded their own files; add the driver's, then move the pointer
            remote = self.checkpoint_uri(step)
            storage.upload_files(
                final,
                [
                    final / "trainer_state.json",
                    *[p for p in final.iterdir() if p.is_file() and p.name != "trainer_state.json"],
                ],
                remote,
            )
            self._upload("metrics.jsonl", "samples.jsonl")
            storage.write_text(storage.join(self.uri, "checkpoints", "latest"), final.name)
            remote_ckpts = sorted(
                n
                for n in storage.list_names(storage.join(self.uri, "checkpoints"))
                if n.startswith(CHECKPOINT_PREFIX) and n[len(CHECKPOINT_PREFIX) :].isdigit()
            )
            for old in remote_ckpts[: -self.cfg.checkpoint.keep_last]:
                storage.remove_tree(storage.join(self.uri, "checkpoints", old))
        pointer.replace(self.ckpt_root / "latest")
        for old in stale:
            shutil.rmtree(old, ignore_errors=True)
        return final

    # ------------------------------------------------------------------ curves

    def plot(self) -> Path | None:
        """Draw the training curves into curves.png (skipped when there is nothing to plot)."""
        from rlmr.training.plots import plot_metrics

        rows = self.read_metrics()
        if not rows:
            return None
        return plot_metrics(rows, self.path / "curves.png", title=self.cfg.logging.run_name)


def _finite_or_none(v):
    """JSON has no NaN or inf: a non-finite float is written as null."""
    return v if not isinstance(v, float) or math.isfinite(v) else None


def _number(v) -> bool:
    return isinstance(v, (int, float))

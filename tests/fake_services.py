"""In-process `Services` for driver tests: real rollout code over a FakeEngine, rule-based scoring.

Every call is recorded so tests can check the control flow (what was sampled,
what the learner received, when weights were synced).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from rlmr.core.records import ConstraintOutcome, ScoredGroup, Verdicts, WritingScores
from rlmr.training.rollout import sample_groups
from rlmr.training.storage import download_tree, join, upload_file
from tests.fakes import FakeEngine


class FakeServices:
    """Responses come from `respond(prompt, i)`; a response passes iff it contains "ok";
    its writing score is its length / 100 (capped at 1)."""

    pad_token_id = 0
    save_optimizer = True

    def __init__(self, respond=None):
        self.engine = FakeEngine(
            respond=respond or (lambda prompt, i: "ok " * (i + 1) if i % 2 else "no" * (i + 1))
        )
        self.sampled_prompt_ids: list[list[str]] = []
        self.batches = []
        self.reference_calls = 0
        self.syncs = 0
        self.updates = 0
        self.loaded_from = None

    def sample(self, rows, params):
        self.sampled_prompt_ids.append([r.id for r in rows])
        return sample_groups(self.engine, rows, params, chat_template=False)

    def score(self, groups, judge=True):
        out = []
        for g in groups:
            verdicts = Verdicts(
                passed=tuple("ok" in t for t in g.texts),
                passed_fraction=tuple(1.0 if "ok" in t else 0.0 for t in g.texts),
                details=tuple((ConstraintOutcome("contains_ok", 0, "ok" in t),) for t in g.texts),
            )
            writing = (
                WritingScores(
                    scores=tuple(min(1.0, len(t) / 100) for t in g.texts),
                    entropies=tuple(0.5 for _ in g.texts),
                )
                if judge
                else None
            )
            out.append(ScoredGroup(g, verdicts, writing))
        return out

    def reference_logprobs(self, tokens):
        self.reference_calls += 1
        return torch.full(tokens.rollout_logprobs.shape, -1.5) * tokens.response_mask

    def update_policy(self, batch):
        self.batches.append(batch)
        self.updates += 1
        return {"pg_loss": 0.0, "clip_frac": 0.0, "entropy": 1.0, "kl": 0.0}

    def sync_weights(self):
        self.syncs += 1

    def save(self, directory, client_state, remote=None):
        """Like the real learner: learner state plus an optimizer/ folder (written by
        `save_optimizer`)."""
        path = Path(directory, "learner.json")
        path.write_text(json.dumps({"updates": self.updates, **client_state}))
        written = [path]
        if self.save_optimizer:
            opt = Path(directory, "optimizer", "state.json")
            opt.parent.mkdir(parents=True, exist_ok=True)
            opt.write_text("{}")
            written.append(opt)
        if remote:
            for f in written:
                upload_file(f, join(remote, str(f.relative_to(directory))))

    def load(self, directory, remote=None):
        if remote and not Path(directory, "learner.json").exists():
            download_tree(remote, Path(directory))
        state = json.loads(Path(directory, "learner.json").read_text())
        self.updates = state["updates"]
        self.loaded_from = directory
        return state


def fake_run_config(tmp_path: Path, *overrides: str):
    """A validated run config for FakeServices runs: tiny model, groups of 4, 2 prompts a step,
    no progress bar or TensorBoard, output under `tmp_path`; `overrides` are `--set` values."""
    from rlmr.config import load_config

    base = [
        "model.source={type: tiny}",
        "data.train=x",
        "data.eval=y",
        f"logging.output_dir={tmp_path}",
        "logging.progress_bar=false",
        "logging.tensorboard=false",
        "rollout.n=4",
        "rollout.prompts_per_step=2",
        "learner.micro_batch_size=4",
    ]
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "c.yaml"
    path.write_text("{}\n")
    return load_config(path, base + list(overrides))

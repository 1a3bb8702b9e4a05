"""What a step reports: phase timings, the metrics line, a few full samples, and the progress bar.

`step_metrics` turns a step's scored groups, rewards and advantages into the
metrics line of `metrics.jsonl` (reward, writing score, pass rate, advantage
statistics, RLMR's observed guarantee `violator_adv_max < 0`, zero-variance
groups, response lengths, judge diagnostics, and the learner's statistics).
`Progress` draws the bar and owns the wall-clock budget (`trainer.max_wall_minutes`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import contextmanager

import torch

from rlmr.config import RLMRConfig
from rlmr.core.records import RewardSignals, ScoredGroup


class PhaseTimer:
    """Wall time per phase of a step, reported as `time/<phase>_s`."""

    def __init__(self):
        self.times: dict[str, float] = {}
        self.started = time.perf_counter()

    @contextmanager
    def __call__(self, phase: str):
        t0 = time.perf_counter()
        yield
        key = f"time/{phase}_s"
        self.times[key] = self.times.get(key, 0.0) + time.perf_counter() - t0

    def elapsed(self) -> float:
        """Seconds since the timer was made."""
        return time.perf_counter() - self.started


def step_metrics(
    scored: Sequence[ScoredGroup],
    signals: RewardSignals,
    rewards: torch.Tensor,
    advantages: torch.Tensor,
    learner_stats: dict,
    frac_zero_std: float,
) -> dict:
    """The metrics line of one step (the learner's statistics included)."""
    responses = [r for s in scored for r in s.group.responses]
    lengths = torch.tensor([len(r.token_ids) for r in responses], dtype=torch.float64)
    passed = signals.passed
    # RLMR's guarantee, observed: the largest advantage any violator got where someone passed (must
    # be < 0).
    violator_adv = advantages[passed.any(1, keepdim=True) & ~passed]
    m = {
        "reward_mean": float(rewards.mean()),
        "reward_std": _std(rewards),
        "writing_mean": float(signals.writing.mean()),
        "pass_rate": float(passed.float().mean()),
        "passed_fraction_mean": float(signals.passed_fraction.mean()),
        "adv_mean": float(advantages.mean()),
        "adv_std": _std(advantages),
        "adv_min": float(advantages.min()),
        "adv_max": float(advantages.max()),
        "violator_adv_max": float(violator_adv.max()) if violator_adv.numel() else None,
        "frac_zero_std": frac_zero_std,
        "response_len_mean": float(lengths.mean()),
        "response_len_max": float(lengths.max()),
        "truncated_frac": sum(r.finish_reason == "length" for r in responses) / len(responses),
        "empty_frac": sum(not r.token_ids for r in responses) / len(responses),
    }
    judged = [s.writing for s in scored if s.writing is not None]
    entropies = [e for w in judged for e in w.entropies]
    if entropies:
        m["judge_entropy_mean"] = sum(entropies) / len(entropies)
    consistency = [w.position_consistency for w in judged if w.position_consistency is not None]
    if consistency:
        m["judge_position_consistency"] = sum(consistency) / len(consistency)
    m.update(learner_stats)
    return m


def _std(t: torch.Tensor) -> float:
    return float(t.std()) if t.numel() > 1 else 0.0


def step_samples(
    scored: Sequence[ScoredGroup], rewards: torch.Tensor, advantages: torch.Tensor, k: int
) -> list[dict]:
    """The first `k` responses of the step, whole, with what was said about them."""
    out = []
    for gi, s in enumerate(scored):
        for ri, resp in enumerate(s.group.responses):
            if len(out) >= k:
                return out
            out.append(
                {
                    "prompt_id": s.group.row.id,
                    "prompt": s.group.row.brief(),
                    "response": resp.text,
                    "writing": s.writing.scores[ri] if s.writing is not None else 0.0,
                    "passed": s.verdicts.passed[ri],
                    "failed_constraints": s.verdicts.failed_types(ri),
                    "reward": float(rewards[gi, ri]),
                    "advantage": float(advantages[gi, ri]),
                    "tokens": len(resp.token_ids),
                    "finish_reason": resp.finish_reason,
                }
            )
    return out


def eval_metrics(scored: Sequence[ScoredGroup]) -> dict:
    """Held-out pass rate, share of constraints met and response length."""
    passed = [p for s in scored for p in s.verdicts.passed]
    fraction = [f for s in scored for f in s.verdicts.passed_fraction]
    lengths = [len(r.token_ids) for s in scored for r in s.group.responses]
    return {
        "eval/pass_rate": sum(passed) / len(passed),
        "eval/passed_fraction_mean": sum(fraction) / len(fraction),
        "eval/response_len_mean": sum(lengths) / len(lengths),
    }


def expected_last_step(
    max_steps: int, step: int, seconds_per_step: float, seconds_left: float | None
) -> int:
    """The step the run will end on: `max_steps`, or sooner when the wall-clock budget runs out
    first (the step that crosses the budget still completes)."""
    if seconds_left is None or seconds_per_step <= 0:
        return max_steps
    return min(max_steps, step + 1 + int(max(0.0, seconds_left) // seconds_per_step))


# What the bar shows, when the step logged it: RLMR, judge training, SFT, held-out.
_SHOWN = (
    ("reward", "reward_mean"),
    ("pass_rate", "pass_rate"),
    ("agree", "judge/agreement"),
    ("nll", "sft/nll"),
    ("eval", "eval/pass_rate"),
    ("eval_agree", "eval/agreement"),
)


class Progress:
    """The progress bar (step, reward, pass rate, ETA) and the wall-clock budget of a run.

    The clock is read once per step, in `out_of_time`; `update` uses that reading.
    """

    def __init__(self, cfg: RLMRConfig, start: int):
        self.max_steps, self.start = cfg.trainer.steps, start
        self.began = self.now = time.monotonic()
        minutes = cfg.trainer.max_wall_minutes
        self.deadline = self.began + 60 * minutes if minutes else None
        self.bar = None
        if cfg.logging.progress_bar:
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=self.max_steps,
                initial=start,
                desc=cfg.logging.run_name,
                unit="step",
                dynamic_ncols=True,
            )

    def out_of_time(self) -> bool:
        """Whether the step just finished crossed the budget (the run then stops after it)."""
        self.now = time.monotonic()
        return self.deadline is not None and self.now >= self.deadline

    def update(self, step: int, metrics: dict) -> None:
        if self.bar is None:
            return
        if self.deadline is not None:  # the ETA follows the time budget, not trainer.steps
            per_step = (self.now - self.began) / (step - self.start)
            self.bar.total = expected_last_step(
                self.max_steps, step, per_step, self.deadline - self.now
            )
        self.bar.update(1)
        shown = {
            name: f"{metrics[key]:.3f}" for name, key in _SHOWN if metrics.get(key) is not None
        }
        self.bar.set_postfix(**shown)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

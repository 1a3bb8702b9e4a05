"""The RLMR training loop, written to read like the algorithm.

    sample prompts -> rollout groups -> verify + judge (in parallel) -> reference log-probs
    -> mix_rewards -> group_advantages -> learner steps -> weight sync
    -> metrics, samples, checkpoint, periodic eval

The loop talks to its workers only through `Services` (implemented over Ray
actors in `actors/services.py`, and over in-process fakes in the tests), so
this file holds the control flow and nothing else.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Sequence
from contextlib import contextmanager
from typing import Protocol

import numpy as np
import torch

from rlmr.core.algo import group_advantages, sequence_kl, zero_std_mask
from rlmr.config import RLMRConfig
from rlmr.data.prompts import PromptSampler
from rlmr.engine.base import SamplingParams
from rlmr.core.records import Group, PromptRow, TrainBatch, Verdicts, WritingScores, build_train_batch
from rlmr.core.rewards import mix_rewards
from rlmr.training.rollout import sampling_params
from rlmr.training.run_dir import RunDir


class Services(Protocol):
    """What the loop needs from the cluster; every call is synchronous from the loop's point of view."""

    pad_token_id: int

    def sample(self, rows: Sequence[PromptRow], params: SamplingParams) -> list[Group]: ...

    def score(self, groups: list[Group], judge: bool = True) -> tuple[list[Verdicts], list[WritingScores] | None]: ...

    def reference_logprobs(self, batch: TrainBatch) -> torch.Tensor: ...

    def train(self, batch: TrainBatch) -> dict: ...

    def sync_weights(self) -> None: ...

    def save(self, directory: str, client_state: dict, remote: str | None = None) -> None: ...

    def load(self, directory: str, remote: str | None = None) -> dict: ...


class PhaseTimer:
    """Wall time per phase of a step, reported as `time/<phase>_s`."""

    def __init__(self):
        self.times: dict[str, float] = {}

    @contextmanager
    def __call__(self, phase: str):
        t0 = time.perf_counter()
        yield
        self.times[f"time/{phase}_s"] = self.times.get(f"time/{phase}_s", 0.0) + time.perf_counter() - t0


# --------------------------------------------------------------------------- one step

def mixed(cfg: RLMRConfig, w: torch.Tensor, passed: torch.Tensor, fraction: torch.Tensor) -> torch.Tensor:
    r = cfg.reward
    return mix_rewards(w, passed, strategy=r.strategy, all_violate=r.all_violate, fixed_weight=r.fixed_weight,
                       margin=r.margin, passed_fraction=fraction)


def scored_rewards(cfg: RLMRConfig, verdicts: list[Verdicts], writing: list[WritingScores] | None):
    """`[groups, n]` tensors: mixed rewards, writing scores, pass flags, shares of constraints met."""
    passed = torch.tensor([v.passed for v in verdicts], dtype=torch.bool)
    fraction = torch.tensor([v.passed_fraction for v in verdicts], dtype=torch.float64)
    w = (torch.tensor([s.scores for s in writing], dtype=torch.float64) if writing is not None
         else torch.zeros(passed.shape, dtype=torch.float64))
    return mixed(cfg, w, passed, fraction), w, passed, fraction


def collect_groups(cfg: RLMRConfig, services: Services, sampler: PromptSampler, params: SamplingParams,
                   timer: PhaseTimer):
    """Sample and score `prompts_per_step` groups; with dynamic sampling, refill zero-variance ones."""
    want = cfg.rollout.prompts_per_step
    kept, spare = [], []
    frac_zero_std = None
    rounds = 1 + (cfg.rollout.max_refill_rounds if cfg.rollout.dynamic_sampling else 0)
    for _ in range(rounds):
        need = want - len(kept)
        with timer("rollout"):
            groups = services.sample(sampler.take(need), params)
        with timer("reward"):
            verdicts, writing = services.score(groups, judge=cfg.reward.writing.type != "none")
        rewards, w, passed, fraction = scored_rewards(cfg, verdicts, writing)
        flat = zero_std_mask(rewards)
        if frac_zero_std is None:
            frac_zero_std = float(flat.float().mean())
        for i, g in enumerate(groups):
            item = (g, verdicts[i], writing[i] if writing is not None else None,
                    rewards[i], w[i], passed[i], fraction[i])
            (spare if (cfg.rollout.dynamic_sampling and bool(flat[i])) else kept).append(item)
        if len(kept) >= want:
            break
    kept = (kept + spare)[:want]  # still short after the refills: keep flat groups (zero advantage)
    return kept, frac_zero_std


def train_step(cfg: RLMRConfig, services: Services, sampler: PromptSampler, step: int) -> tuple[dict, list[dict]]:
    """One GRPO step; returns the step's metrics and a few samples for samples.jsonl."""
    timer = PhaseTimer()
    t_start = time.perf_counter()
    params = sampling_params(cfg.rollout, seed=cfg.trainer.seed * 1_000_003 + step)
    items, frac_zero_std = collect_groups(cfg, services, sampler, params, timer)
    groups = [it[0] for it in items]
    rewards = torch.stack([it[3] for it in items])
    writing = torch.stack([it[4] for it in items])
    passed = torch.stack([it[5] for it in items])
    fraction = torch.stack([it[6] for it in items])

    batch = build_train_batch(groups, torch.zeros(rewards.shape), services.pad_token_id)
    kl_reward = None
    if cfg.uses_reference:
        with timer("reference"):
            batch.ref_logprobs = services.reference_logprobs(batch)
        if not cfg.algo.kl.in_loss:
            # KL in reward: penalise the writing score, *then* mix, so the dynamic penalty is
            # sized on what is mixed and every violator still ends below its group's mean.
            kl_reward = sequence_kl(batch.rollout_logprobs, batch.ref_logprobs, batch.response_mask, "k1",
                                    cfg.algo.log_ratio_clamp).reshape(rewards.shape).to(rewards.dtype)
            rewards = mixed(cfg, writing - cfg.algo.kl.beta * kl_reward, passed, fraction)

    advantages = group_advantages(rewards, method=cfg.algo.advantage, eps=cfg.algo.eps)
    batch.advantages = advantages.reshape(-1).to(torch.float32)

    with timer("train"):
        learner_stats = services.train(batch)
    with timer("sync"):
        services.sync_weights()

    metrics = step_metrics(groups, rewards, writing, passed, advantages, [it[1] for it in items],
                           [it[2] for it in items], learner_stats, frac_zero_std)
    if kl_reward is not None:
        metrics["kl_reward_mean"] = float(kl_reward.mean())
    metrics.update(timer.times)
    metrics["time/step_s"] = time.perf_counter() - t_start
    samples = step_samples(groups, rewards, writing, passed, advantages, [it[1] for it in items],
                           cfg.logging.samples_per_step)
    return metrics, samples


def step_metrics(groups, rewards, writing, passed, advantages, verdicts, scores, learner_stats, frac_zero_std) -> dict:
    lengths = torch.tensor([len(r.token_ids) for g in groups for r in g.responses], dtype=torch.float64)
    truncated = [r.finish_reason == "length" for g in groups for r in g.responses]
    some_pass = passed.any(1, keepdim=True) & ~passed
    violator_adv = advantages[some_pass]
    m = {
        "reward_mean": float(rewards.mean()), "reward_std": float(rewards.std()) if rewards.numel() > 1 else 0.0,
        "writing_mean": float(writing.mean()), "pass_rate": float(passed.float().mean()),
        "passed_fraction_mean": float(torch.tensor([v.passed_fraction for v in verdicts]).mean()),
        "adv_mean": float(advantages.mean()), "adv_std": float(advantages.std()) if advantages.numel() > 1 else 0.0,
        "adv_min": float(advantages.min()), "adv_max": float(advantages.max()),
        # RLMR's guarantee, observed: the largest advantage any violator got (must be < 0).
        "violator_adv_max": float(violator_adv.max()) if violator_adv.numel() else None,
        "frac_zero_std": frac_zero_std,
        "response_len_mean": float(lengths.mean()), "response_len_max": float(lengths.max()),
        "truncated_frac": sum(truncated) / len(truncated),
    }
    if any(s is not None and s.entropies for s in scores):
        ents = [e for s in scores if s is not None for e in s.entropies]
        m["judge_entropy_mean"] = sum(ents) / len(ents)
    consist = [s.position_consistency for s in scores if s is not None and s.position_consistency is not None]
    if consist:
        m["judge_position_consistency"] = sum(consist) / len(consist)
    m.update(learner_stats)
    return m


def step_samples(groups, rewards, writing, passed, advantages, verdicts, k: int) -> list[dict]:
    out = []
    for gi, g in enumerate(groups):
        for ri, resp in enumerate(g.responses):
            if len(out) >= k:
                return out
            failed = [d.get("type") for d in (verdicts[gi].details[ri] if verdicts[gi].details else ())
                      if d.get("passed") is False]
            out.append({"prompt_id": g.row.id, "prompt": g.row.brief(), "response": resp.text,
                        "writing": float(writing[gi, ri]), "passed": bool(passed[gi, ri]),
                        "failed_constraints": failed, "reward": float(rewards[gi, ri]),
                        "advantage": float(advantages[gi, ri]), "tokens": len(resp.token_ids),
                        "finish_reason": resp.finish_reason})
    return out


def evaluate(cfg: RLMRConfig, services: Services, rows: Sequence[PromptRow]) -> dict:
    """Held-out constraint pass rate (no judge: the number RLMR must move), fixed sampling seed."""
    t0 = time.perf_counter()
    params = sampling_params(cfg.rollout, n=cfg.trainer.eval_samples_per_prompt, seed=cfg.trainer.seed,
                             temperature=cfg.trainer.eval_temperature)
    groups = services.sample(list(rows), params)
    verdicts, _ = services.score(groups, judge=False)
    passed = [p for v in verdicts for p in v.passed]
    frac = [f for v in verdicts for f in v.passed_fraction]
    lengths = [len(r.token_ids) for g in groups for r in g.responses]
    return {"eval/pass_rate": sum(passed) / len(passed), "eval/passed_fraction_mean": sum(frac) / len(frac),
            "eval/response_len_mean": sum(lengths) / len(lengths), "eval/prompts": len(rows),
            "time/eval_s": time.perf_counter() - t0}


# --------------------------------------------------------------------------- checkpoints

def save_checkpoint(run: RunDir, services: Services, sampler: PromptSampler, step: int) -> None:
    staging = run.staging_dir(step)
    services.save(str(staging), client_state={"step": step}, remote=run.checkpoint_uri(step))
    torch.save({"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()},
               staging / "rng.pt")
    run.commit_checkpoint(staging, step, {"step": step, "data": sampler.state_dict()})


def restore_checkpoint(run: RunDir, services: Services, sampler: PromptSampler) -> int:
    import json

    from rlmr.training.run_dir import RunDirError

    ckpt = run.latest_checkpoint()
    if not (ckpt / "optimizer").exists():
        raise RunDirError(f"--resume: {ckpt} holds no optimizer state (checkpoint.save_optimizer was false), "
                          f"so training cannot continue exactly; start a new run from its policy/ weights instead")
    state = json.loads((ckpt / "trainer_state.json").read_text())
    services.load(str(ckpt), remote=run.checkpoint_uri(state["step"]))
    sampler.load_state_dict(state["data"])
    rng = torch.load(ckpt / "rng.pt", weights_only=False)
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])
    torch.set_rng_state(rng["torch"])
    run.truncate_after(state["step"])
    return int(state["step"])


# --------------------------------------------------------------------------- the loop

def train(cfg: RLMRConfig, services: Services, run: RunDir, train_rows: Sequence[PromptRow],
          eval_rows: Sequence[PromptRow] = ()) -> list[dict]:
    """Run, or continue when `run` was opened to resume; returns the metric rows logged by this call."""
    sampler = PromptSampler(train_rows, seed=cfg.data.seed, shuffle=cfg.data.shuffle)
    start = 0
    resume = run.resuming
    if resume:
        start = restore_checkpoint(run, services, sampler)
        services.sync_weights()  # rollout engines start from the checkpoint's weights
    run.open_loggers()
    logged = []
    eval_rows = list(eval_rows)[: cfg.data.eval_size] if cfg.data.eval_size else list(eval_rows)
    if start == 0 and eval_rows and cfg.trainer.eval_at_start:
        logged.append({"step": 0, **evaluate(cfg, services, eval_rows)})
        run.log(0, logged[-1])
    bar = _progress(cfg, start)
    began = time.monotonic()
    deadline = began + 60 * cfg.trainer.max_wall_minutes if cfg.trainer.max_wall_minutes else None
    try:
        for step in range(start + 1, cfg.trainer.steps + 1):
            metrics, samples = train_step(cfg, services, sampler, step)
            out_of_time = deadline is not None and time.monotonic() >= deadline
            last = step == cfg.trainer.steps or out_of_time
            if eval_rows and ((cfg.trainer.eval_every and step % cfg.trainer.eval_every == 0) or last):
                metrics.update(evaluate(cfg, services, eval_rows))
            run.log(step, metrics)
            run.write_samples(step, samples)
            logged.append({"step": step, **metrics})
            if last or (cfg.checkpoint.every and step % cfg.checkpoint.every == 0):
                save_checkpoint(run, services, sampler, step)
                run.plot()
            if bar is not None:
                if deadline is not None:  # the ETA follows the time budget, not trainer.steps
                    now = time.monotonic()
                    bar.total = expected_last_step(cfg.trainer.steps, step, (now - began) / (step - start),
                                                   deadline - now)
                bar.update(1)
                bar.set_postfix(reward=f"{metrics['reward_mean']:.3f}", pass_rate=f"{metrics['pass_rate']:.2f}",
                                **({"eval": f"{metrics['eval/pass_rate']:.2f}"} if "eval/pass_rate" in metrics else {}))
            if out_of_time:
                print(f"rlmr: stopping after step {step}: trainer.max_wall_minutes "
                      f"({cfg.trainer.max_wall_minutes:g}) reached", file=sys.stderr)
                break
    finally:
        if bar is not None:
            bar.close()
        run.close()
    return logged


def expected_last_step(max_steps: int, step: int, seconds_per_step: float, seconds_left: float | None) -> int:
    """The step the run will end on: `max_steps`, or sooner when the wall-clock budget runs out first
    (the step that crosses the budget still completes)."""
    if seconds_left is None or seconds_per_step <= 0:
        return max_steps
    return min(max_steps, step + 1 + int(max(0.0, seconds_left) // seconds_per_step))


def _progress(cfg: RLMRConfig, start: int):
    if not cfg.logging.progress_bar:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=cfg.trainer.steps, initial=start, desc=cfg.logging.run_name, unit="step", dynamic_ncols=True)

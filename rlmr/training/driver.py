"""The RLMR training loop, written to read like the algorithm.

    sample prompts -> rollout groups -> verify + judge (in parallel) -> reference log-probs
    -> mix_rewards -> group_advantages -> policy update -> weight sync
    -> metrics, samples, checkpoint, periodic eval

The loop talks to its workers only through `Services` (implemented over Ray
actors in `actors/services.py`, and over in-process fakes in the tests), so
this file holds the control flow and nothing else. The definitions it applies
are in `docs/ALGORITHMS.md`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass
from typing import Protocol

import torch

from rlmr.config import RewardConfig, RLMRConfig
from rlmr.core.algo import group_advantages, sequence_kl, zero_std_mask
from rlmr.core.records import Group, PromptRow, RewardSignals, ScoredGroup, TokenBatch, TrainBatch
from rlmr.core.rewards import mix_rewards
from rlmr.data.prompts import PromptSampler
from rlmr.engine.base import SamplingParams
from rlmr.training.checkpoints import restore_checkpoint, save_checkpoint
from rlmr.training.metrics import PhaseTimer, Progress, eval_metrics, step_metrics, step_samples
from rlmr.training.rollout import sampling_params
from rlmr.training.run_dir import RunDir


class Services(Protocol):
    """What the loop needs from the cluster; every call is synchronous from the loop's point of
    view. Services may also stream (`sample_chunks`, `score_async`: see `sample_and_score`)."""

    pad_token_id: int

    def sample(self, rows: Sequence[PromptRow], params: SamplingParams) -> list[Group]: ...

    def score(
        self,
        groups: list[Group],
        judge: bool = True,  # pragma: no mutate - a Protocol stub: never runs, implementations do
    ) -> list[ScoredGroup]: ...

    def reference_logprobs(self, tokens: TokenBatch) -> torch.Tensor: ...

    def update_policy(self, batch: TrainBatch) -> dict: ...

    def sync_weights(self) -> None: ...

    # Judge training (`task: judge`) only: read sampled judgments, judge held-out pairs.
    def read_judgments(self, groups: list[Group]) -> list: ...

    def judge_held_out(self, pairs: list) -> list: ...

    def save(self, directory: str, client_state: dict, remote: str | None = None) -> None: ...

    def load(self, directory: str, remote: str | None = None) -> dict: ...


def mix(reward: RewardConfig, writing: torch.Tensor, signals: RewardSignals) -> torch.Tensor:
    """RLMR's reward for `[groups, n]` writing scores and the verifier's signals, as configured."""
    return mix_rewards(
        writing,
        signals.passed,
        strategy=reward.strategy,
        all_violate=reward.all_violate,
        fixed_weight=reward.fixed_weight,
        margin=reward.margin,
        passed_fraction=signals.passed_fraction,
    )


def sample_and_score(
    services: Services,
    rows: list[PromptRow],
    params: SamplingParams,
    judge: bool,
    timer: PhaseTimer,
) -> list[ScoredGroup]:
    """The groups of `rows`, sampled, verified and judged, in the order of `rows`.

    Where the services stream (`sample_chunks` and `score_async`, as Ray's do), each rollout
    replica's groups go to the verifier and the judge as soon as that replica answers, so their
    scoring overlaps the replicas still sampling; `time/reward_s` is then the scoring left after
    the last replica answered. Otherwise the whole batch is sampled, then scored.
    """
    if not hasattr(services, "score_async"):
        with timer("rollout"):
            groups = services.sample(rows, params)
        with timer("reward"):
            return services.score(groups, judge=judge)
    in_flight = {}
    # closing: a failure here must not leave the generator (and what it holds) open
    with timer("rollout"), closing(services.sample_chunks(rows, params)) as shares:
        for share, groups in shares:
            in_flight[share] = services.score_async(groups, judge=judge)
    with timer("reward"):
        return [scored for share in sorted(in_flight) for scored in in_flight[share].get()]


def collect_groups(
    cfg: RLMRConfig,
    services: Services,
    sampler: PromptSampler,
    params: SamplingParams,
    timer: PhaseTimer,
) -> tuple[list[ScoredGroup], float]:
    """Sample and score `prompts_per_step` groups; with dynamic sampling, refill zero-variance ones.

    Returns the groups and the share of zero-variance groups in the first round.
    """
    want = cfg.rollout.prompts_per_step
    kept: list[ScoredGroup] = []
    spare: list[ScoredGroup] = []
    frac_zero_std = None
    rounds = 1 + (cfg.rollout.max_refill_rounds if cfg.rollout.dynamic_sampling else 0)
    for _ in range(rounds):
        rows = sampler.take(want - len(kept))
        scored = sample_and_score(services, rows, params, cfg.reward.writing.type != "none", timer)
        signals = RewardSignals.of(scored)
        if non_finite(writing=signals.writing):  # no reward to refill on: the step is skipped
            return kept + spare + scored, float("nan")
        flat = zero_std_mask(mix(cfg.reward, signals.writing, signals)).tolist()
        if frac_zero_std is None:
            frac_zero_std = sum(flat) / len(flat)
        for group, is_flat in zip(scored, flat):
            (spare if cfg.rollout.dynamic_sampling and is_flat else kept).append(group)
        if len(kept) >= want:
            break
    return (kept + spare)[
        :want
    ], frac_zero_std  # still short after the refills: flat groups, zero advantage


class TrainingHalted(RuntimeError):
    """The run stopped itself (steps skipped in a row); its message says why and what is kept."""


def non_finite(**tensors) -> list[str]:
    """The names of the given tensors that hold NaN or inf (None counts as finite)."""
    return [k for k, t in tensors.items() if t is not None and not bool(torch.isfinite(t).all())]


def skipped_step(scored, signals: RewardSignals, bad: list[str], timer, samples_per_step: int):
    """The metrics and samples of a step left out for NaN/inf: no update, no weight sync."""
    zeros = torch.zeros_like(signals.writing)
    metrics = {
        "skipped_step": 1.0,
        "skipped_for": ", ".join(bad),
        "pass_rate": float(signals.passed.float().mean()),
        **timer.times,
        "time/step_s": timer.elapsed(),
    }
    return metrics, step_samples(scored, signals.writing, zeros, samples_per_step)


@dataclass
class Rollout:
    """The sampling half of a step, handed to its training half: scored groups, their token batch,
    the reference log-probs, and where the prompt sampler stood after taking this step's prompts
    (what a checkpoint of this step records)."""

    step: int
    scored: list[ScoredGroup]
    frac_zero_std: float
    tokens: TokenBatch
    ref_logprobs: torch.Tensor | None
    timer: PhaseTimer
    data_state: dict
    faults: list[str]  # what in the samples is NaN or inf (the step is then skipped)


def sample_step(cfg: RLMRConfig, services: Services, sampler: PromptSampler, step: int) -> Rollout:
    """Sample, verify and judge a step's groups, and compute their reference log-probs."""
    timer = PhaseTimer()
    params = sampling_params(cfg.rollout, seed=cfg.trainer.seed * 1_000_003 + step)
    scored, frac_zero_std = collect_groups(cfg, services, sampler, params, timer)
    data_state = sampler.state_dict()
    tokens = TokenBatch.from_groups([s.group for s in scored], services.pad_token_id)
    ref_logprobs, faults = None, rollout_faults(scored, tokens)
    if cfg.uses_reference and not faults:
        with timer("reference"):
            ref_logprobs = services.reference_logprobs(tokens)
    return Rollout(step, scored, frac_zero_std, tokens, ref_logprobs, timer, data_state, faults)


def rollout_faults(scored: list[ScoredGroup], tokens: TokenBatch) -> list[str]:
    """What in a step's samples is NaN or inf (the step is then skipped)."""
    writing = RewardSignals.of(scored).writing
    return non_finite(**{"writing scores": writing, "rollout log-probs": tokens.rollout_logprobs})


def train_step(
    cfg: RLMRConfig, services: Services, rollout: Rollout, started: float | None = None
) -> tuple[dict, list]:
    """The training half of a step: rewards, advantages, policy update, weight sync. Returns the
    step's metrics and a few samples for samples.jsonl; the step's time counts from `started`
    (a `time.perf_counter()`; default: when its sampling began)."""
    scored, tokens, ref_logprobs = rollout.scored, rollout.tokens, rollout.ref_logprobs
    timer = rollout.timer
    if started is not None:
        timer.started = started
    signals = RewardSignals.of(scored)
    samples_per_step = cfg.logging.samples_per_step
    if rollout.faults:
        return skipped_step(scored, signals, rollout.faults, timer, samples_per_step)
    stale = staleness(scored, getattr(services, "version", 0), cfg.rollout.max_staleness)

    writing, kl_reward = signals.writing, None
    if cfg.reward.truncated_penalty:
        cut = [[r.finish_reason == "length" for r in s.group.responses] for s in scored]
        writing = writing - cfg.reward.truncated_penalty * torch.tensor(cut, dtype=writing.dtype)
    if cfg.uses_reference:
        if non_finite(ref_logprobs=ref_logprobs):
            return skipped_step(scored, signals, ["reference log-probs"], timer, samples_per_step)
        if not cfg.algo.kl.in_loss:
            # KL in reward: penalise the writing score, *then* mix, so the dynamic penalty is
            # sized on what is mixed and every violator still ends below its group's mean.
            kl_reward = (
                sequence_kl(
                    tokens.rollout_logprobs,
                    ref_logprobs,
                    tokens.response_mask,
                    "k1",
                    cfg.algo.log_ratio_clamp,
                )
                .reshape(writing.shape)
                .to(writing.dtype)
            )
            writing = writing - cfg.algo.kl.beta * kl_reward
    rewards = mix(cfg.reward, writing, signals)
    advantages = group_advantages(rewards, method=cfg.algo.advantage, eps=cfg.algo.eps)
    batch = TrainBatch.of(tokens, advantages, ref_logprobs if cfg.algo.kl.in_loss else None)

    with timer("update"):
        learner_stats = services.update_policy(batch)
    with timer("sync"):
        services.sync_weights()

    metrics = step_metrics(
        scored, signals, rewards, advantages, learner_stats, rollout.frac_zero_std
    )
    metrics["skipped_step"] = float(learner_stats.get("skipped_update_frac", 0.0) == 1.0)
    if metrics["skipped_step"]:
        metrics["skipped_for"] = "gradients"
    if kl_reward is not None:
        metrics["kl_reward_mean"] = float(kl_reward.mean())
    if cfg.rollout.max_staleness:
        metrics.update(staleness_metrics(stale, cfg.rollout.max_staleness))
    metrics.update(timer.times, **{"time/step_s": timer.elapsed()})
    return metrics, step_samples(scored, rewards, advantages, samples_per_step)


def training_step(
    cfg: RLMRConfig, services: Services, sampler: PromptSampler, step: int
) -> tuple[dict, list]:
    """One synchronous GRPO step; returns the step's metrics and a few samples for
    samples.jsonl."""
    return train_step(cfg, services, sample_step(cfg, services, sampler, step))


def staleness(scored: Sequence[ScoredGroup], version: int, max_staleness: int) -> list[int]:
    """Each group's staleness: the learner's weight version minus the one that sampled it. One
    above `max_staleness` is refused: the rollout pipeline never hands the learner such a group."""
    stale = [version - s.group.version for s in scored]
    bad = [s for s in stale if not 0 <= s <= max_staleness]
    if bad:
        raise RuntimeError(
            f"groups sampled {bad[0]} weight versions away from the learner's "
            f"(rollout.max_staleness is {max_staleness}): the rollout pipeline lost its order"
        )
    return stale


def staleness_metrics(stale: Sequence[int], max_staleness: int) -> dict:
    """The staleness histogram (share of groups per value) with its mean and max."""
    n = max(len(stale), 1)
    hist = {f"staleness/{v}": sum(1 for s in stale if s == v) / n for v in range(max_staleness + 1)}
    return {"staleness_mean": sum(stale) / n, "staleness_max": float(max(stale, default=0)), **hist}


def evaluate(cfg: RLMRConfig, services: Services, rows: Sequence[PromptRow], step: int = 0) -> dict:
    """Held-out constraint pass rate (no judge: the number RLMR must move), fixed sampling seed;
    nothing without held-out prompts. (`step`: the evaluation's step, for evaluations that write
    files per step.)"""
    if not rows:
        return {}
    timer = PhaseTimer()
    params = sampling_params(
        cfg.rollout,
        n=cfg.trainer.eval_samples_per_prompt,
        seed=cfg.trainer.seed,
        temperature=cfg.trainer.eval_temperature,
    )
    scored = services.score(services.sample(list(rows), params), judge=False)
    return {**eval_metrics(scored), "eval/prompts": len(rows), "time/eval_s": timer.elapsed()}


def run_training(
    cfg: RLMRConfig,
    services: Services,
    run: RunDir,
    train_rows: Sequence,
    eval_rows: Sequence = (),
    step_fn=None,
    eval_fn=None,
    stop=None,
) -> list[dict]:
    """Run, or continue when `run` was opened to resume; returns the metric rows logged by this
    call.

    The step and the evaluation are the task's: RLMR's `training_step` and `evaluate` for
    `task: policy`, the judge's (`rlmr.training.judge_task`) for `task: judge`; `rlmr sft`
    passes its own. Everything else (data order, checkpoints, resume, eval cadence, wall-clock
    budget, logs) is the same loop. `stop` (a `rlmr.training.stop.StopSignals`): once it has
    `received` a signal, the step in progress is the last (evaluated and checkpointed).
    """
    from rlmr.training.pipeline import AsyncSteps, VersionedServices

    sampler = PromptSampler(train_rows, seed=cfg.data.seed, shuffle=cfg.data.shuffle)

    if step_fn is None or eval_fn is None:
        from rlmr.training import judge_task

        policy = cfg.task == "policy"
        if policy and cfg.rollout.max_staleness:
            default_step = AsyncSteps(cfg.rollout.max_staleness, sample_step, train_step)
        else:
            default_step = training_step if policy else judge_task.judge_training_step
        step_fn = step_fn or default_step
        eval_fn = eval_fn or (evaluate if policy else judge_task.judge_evaluate)
    services = VersionedServices(services)
    # Steps sampled ahead (asynchronous rollout) move the prompt sampler past the step trained.
    data_state = getattr(step_fn, "data_state", lambda step: sampler.state_dict())
    start = 0
    if run.resuming:
        start = restore_checkpoint(run, services, sampler)
        services.sync_weights()  # rollout engines start from the checkpoint's weights
    run.open_loggers()
    logged = []
    eval_rows = list(eval_rows)[: cfg.data.eval_size] if cfg.data.eval_size else list(eval_rows)
    # Held-out prompts, benchmark suites (trainer.eval), or both.
    evaluating = bool(eval_rows) or bool(cfg.trainer.eval.suites)
    if start == 0 and evaluating and cfg.trainer.eval_at_start:
        logged.append({"step": 0, **eval_fn(cfg, services, eval_rows, 0)})
        run.log(0, logged[-1])
    progress = Progress(cfg, start)
    skipped: list[int] = []  # the steps skipped in a row, up to now
    try:
        for step in range(start + 1, cfg.trainer.steps + 1):
            metrics, samples = step_fn(cfg, services, sampler, step)
            skipped = skipped + [step] if metrics.get("skipped_step") else []
            if len(skipped) >= cfg.trainer.max_skipped_steps:
                run.log(step, metrics)
                run.write_samples(step, samples)
                raise TrainingHalted(
                    f"steps {skipped[0]}-{step}: {len(skipped)} steps in a row skipped for "
                    f"non-finite values ({metrics.get('skipped_for')}; "
                    f"trainer.max_skipped_steps is {cfg.trainer.max_skipped_steps}); their "
                    f"metrics and samples are in {run.path}, the last checkpoint is "
                    f"{run.latest_checkpoint() or 'none'}"
                )
            out_of_time = progress.out_of_time()
            signalled = stop is not None and stop.received is not None
            last = step == cfg.trainer.steps or out_of_time or signalled
            if evaluating and (
                (cfg.trainer.eval_every and step % cfg.trainer.eval_every == 0) or last
            ):
                metrics.update(eval_fn(cfg, services, eval_rows, step))
            run.log(step, metrics)
            run.write_samples(step, samples)
            logged.append({"step": step, **metrics})
            if last or (cfg.checkpoint.every and step % cfg.checkpoint.every == 0):
                try:
                    save_checkpoint(run, services, data_state(step), step)
                except OSError as err:  # a full or unwritable disk: the last checkpoint stands
                    raise TrainingHalted(
                        f"step {step}: the checkpoint could not be written ({err}); the last "
                        f"complete checkpoint is {run.latest_checkpoint() or 'none'}"
                    ) from err
                run.plot()
            progress.update(step, metrics)
            if signalled:
                print(
                    f"rlmr: stopped after step {step} ({stop.received}); checkpoint written, "
                    "continue with --resume",
                    file=sys.stderr,
                )
                break
            if out_of_time:
                print(
                    f"rlmr: stopping after step {step}: trainer.max_wall_minutes "
                    f"({cfg.trainer.max_wall_minutes:g}) reached",
                    file=sys.stderr,
                )
                break
    finally:
        getattr(step_fn, "close", lambda: None)()
        progress.close()
        run.close()
    return logged

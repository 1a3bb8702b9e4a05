"""Asynchronous rollout: sample the next steps while the learner trains this one.

With `rollout.max_staleness: k > 0` the loop keeps the sampling half of steps
`t+1 .. t+k` (`driver.sample_step`: rollout, verification, judging, reference
log-probs) running on a background thread while the training half of step `t`
(`driver.train_step`: update and weight sync) runs on the loop's thread. On a
disaggregated cluster the rollout engines and the learner then work at the same
time, and a step takes about max(rollout, train) instead of their sum.

Samples of step `t+j` come from weights up to `j` updates old. Every group
carries the weight version that sampled it (`Group.version`, stamped by
`VersionedServices`), the learner corrects for the older policy with the
truncated behaviour weight of `algo.behaviour_weight_cap` (docs/ALGORITHMS.md
section 5), and each step logs its staleness histogram. With `k = 0` the run uses
`driver.training_step` (no thread); `AsyncSteps(0)` is the same loop through this
machinery, and a test holds the two equal bit for bit.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

from rlmr.config import RLMRConfig
from rlmr.data.prompts import PromptSampler


class VersionedServices:
    """A run's `Services` with the rollout engines' weight version.

    `sync_weights` counts versions; `sample` stamps each group with the version that sampled it.
    Sampling and weight sync exclude each other (a sync never lands in the middle of a sampling
    call), and scoring calls are serialised, so the sampling thread and the loop's thread
    (evaluation) can share one set of workers. Every other call passes through, `score_async`
    included: only Ray's services have it; Ray takes calls from any thread, and `ActorGroup`
    restarts a failed replica once however many threads saw the fault.
    """

    def __init__(self, services, version: int = 0):
        self._services = services
        self.version = version
        self._engines = threading.Lock()
        self._scorers = threading.Lock()

    def __getattr__(self, name):
        return getattr(self._services, name)

    def sample(self, rows, params):
        with self._engines:
            groups = self._services.sample(rows, params)
            return [dataclasses.replace(g, version=self.version) for g in groups]

    def sample_chunks(self, rows, params):
        with self._engines:  # held until the last share is sampled
            for share, groups in self._services.sample_chunks(rows, params):
                yield share, [dataclasses.replace(g, version=self.version) for g in groups]

    def score(self, groups, judge: bool = True):
        with self._scorers:
            return self._services.score(groups, judge=judge)

    def sync_weights(self) -> None:
        with self._engines:
            self._services.sync_weights()
            self.version += 1


class AsyncSteps:
    """The policy's training step with rollout up to `max_staleness` steps ahead.

    Built from the step's two halves (`driver.sample_step`, `driver.train_step`) and called
    like `driver.training_step` (`(cfg, services, sampler, step)`), with a `VersionedServices`.
    The prompt sampler runs ahead with the rollout, so a checkpoint of step `t` records
    `data_state(t)`, the sampler's position after step `t`'s prompts: a resumed run samples
    steps `t+1 ..` again, from the checkpoint's weights. `close()` drops the steps sampled
    ahead (it waits for the one in progress).
    """

    def __init__(self, max_staleness: int, sample_step, train_step):
        if max_staleness < 0:
            raise ValueError(f"max_staleness: must be >= 0, got {max_staleness}")
        self.max_staleness = max_staleness
        self.sample_step, self.train_step = sample_step, train_step
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rlmr-rollout")
        self._ahead: dict[int, Future] = {}
        self._data_states: dict[int, dict] = {}

    def __call__(self, cfg: RLMRConfig, services, sampler: PromptSampler, step: int):
        started = time.perf_counter()
        if not isinstance(services, VersionedServices):
            raise TypeError("AsyncSteps needs VersionedServices (it reads the weight version)")
        last = min(step + self.max_staleness, cfg.trainer.steps)
        for s in range(step, last + 1):  # in step order: one sampling thread takes them in turn
            if s not in self._ahead:
                self._ahead[s] = self._pool.submit(self.sample_step, cfg, services, sampler, s)
        waited = time.perf_counter()
        rollout = self._ahead.pop(step).result()
        waited = time.perf_counter() - waited
        self._data_states = {step: rollout.data_state}
        metrics, samples = self.train_step(cfg, services, rollout, started=started)
        metrics["time/wait_rollout_s"] = waited
        return metrics, samples

    def data_state(self, step: int) -> dict:
        """The prompt sampler's position after step `step` (the last step trained)."""
        return self._data_states[step]

    def close(self) -> None:
        for future in self._ahead.values():
            future.cancel()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._ahead.clear()

"""VerifierWorker: a CPU-only Ray actor that checks whole GRPO groups against their prompts' constraints.

Thin shell over `rlmr.verify`. The settings (loose IFEval variants, the
judge-directed-text guard, what to do with soft constraints) come from the
`reward.verifier` section; the number of replicas and their CPUs from
`cluster.verifier` (placed by `actors/services.py`). `start_verifier_workers`
starts `num_workers` replicas without a placement group (tests, ad-hoc use).

    worker = VerifierWorker.remote(cfg.reward.verifier)
    verdicts = ray.get(worker.check_groups.remote(groups))   # list[rlmr.core.records.Verdicts], one per Group
    checks = ray.get(worker.check.remote([VerifyGroup(constraints, responses), ...]))  # list[GroupCheck]
"""

from __future__ import annotations

import os

import ray

from rlmr.config import VerifierConfig


@ray.remote(num_cpus=1, num_gpus=0)
class VerifierWorker:
    def __init__(self, config: VerifierConfig | dict | None = None, engine=None):
        """`engine`: a `TextEngine`, or a zero-argument callable that builds one in this process, for
        soft constraints when `config.soft_constraints == "engine"`; ignored otherwise."""
        from rlmr.verify import SoftConstraintChecker, verify_response

        if config is None:
            config = VerifierConfig()
        elif isinstance(config, dict):
            config = VerifierConfig.model_validate(config)
        self.config = config
        self.soft_checker = None
        if config.soft_constraints == "engine":
            if engine is None:
                raise ValueError("reward.verifier.soft_constraints: engine needs a text engine: pass engine= (a "
                                 "TextEngine or a factory) to VerifierWorker, or set soft_constraints: unverifiable")
            self.soft_checker = SoftConstraintChecker(engine() if callable(engine) else engine)
        self.checked = 0
        # Load the language profiles, the Punkt model and NLTK's tokenizer now, not on the first group.
        verify_response("Warm up the verifier. It is READY now.",
                        [{"type": "language:response_language", "language": "en"},
                         {"type": "change_case:capital_word_frequency", "capital_frequency": 1,
                          "capital_relation": "at least"}])

    def _options(self) -> dict:
        return {"loose": self.config.loose, "judge_directed_text": self.config.judge_directed_text,
                "soft_checker": self.soft_checker}

    def check(self, groups) -> list:
        """`rlmr.verify.GroupCheck` per group; a group is a `VerifyGroup(constraints, responses)` or a list of
        (response, constraints) pairs. Per response: pass flag, per-constraint verdicts, passed fraction."""
        from rlmr.verify import verify_groups

        checks = verify_groups(groups, **self._options())
        self.checked += sum(len(c.responses) for c in checks)
        return checks

    def check_groups(self, groups) -> list:
        """`rlmr.core.records.Verdicts` per `rlmr.core.records.Group` (the training driver's call)."""
        from rlmr.verify import VerifyGroup
        from rlmr.verify.api import group_verdicts

        checks = self.check([VerifyGroup(g.row.constraints, g.texts) for g in groups])
        return [group_verdicts(c) for c in checks]

    def check_batch(self, items) -> list:
        """`rlmr.verify.ResponseCheck` per (response, constraints) pair."""
        from rlmr.verify import verify_batch

        checks = verify_batch(items, **self._options())
        self.checked += len(checks)
        return checks

    def info(self) -> dict:
        return {"pid": os.getpid(), "checked": self.checked, "config": self.config.model_dump(),
                "soft_constraints": "engine" if self.soft_checker else "unverifiable"}


class VerifierPool:
    """`n` VerifierWorkers; `check(groups)` splits the groups into contiguous chunks, one per worker, keeping order."""

    def __init__(self, workers: list):
        if not workers:
            raise ValueError("VerifierPool needs at least one worker")
        self.workers = workers

    def _fan_out(self, method: str, items: list) -> list:
        from actors.common import chunks

        refs = [getattr(w, method).remote(part) for w, part in zip(self.workers, chunks(items, len(self.workers)))]
        return [x for part in ray.get(refs) for x in part]

    def check(self, groups: list) -> list:
        return self._fan_out("check", list(groups))

    def check_groups(self, groups: list) -> list:
        return self._fan_out("check_groups", list(groups))

    def shutdown(self) -> None:
        for worker in self.workers:
            ray.kill(worker, no_restart=True)


def start_verifier_workers(config: VerifierConfig, num_workers: int = 1, cpus: float = 1.0,
                           engine=None) -> VerifierPool:
    """Start `num_workers` CPU-only workers outside any placement group."""
    n = num_workers
    if n < 1:
        raise ValueError(f"workers: must be >= 1, got {n}")
    return VerifierPool([VerifierWorker.options(num_cpus=cpus).remote(config, engine) for _ in range(n)])

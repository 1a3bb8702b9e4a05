"""The constraint verifier's role: checks whole GRPO groups against their prompts' constraints.

Thin shell over `rlmr.verify`. The settings (loose IFEval variants, the
judge-directed-text guard, what to do with soft constraints) come from the
`reward.verifier` section; the number of replicas and their CPUs from
`cluster.verifier`. `VerifierWorker` is the role's own CPU-only Ray actor;
a colocated learner (`cluster.colocate`, `actors.colocated`) runs the same
calls in its own process instead.

    worker = VerifierWorker.remote(cfg.reward.verifier)
    verdicts = ray.get(worker.check.remote(groups))   # list[Verdicts], one per Group
"""

from __future__ import annotations

import os

import ray

from rlmr.config import HFEngine, RLMRConfig, VerifierConfig
from rlmr.core.records import Group, Verdicts


def soft_engine_factory(cfg: RLMRConfig):
    """What the verifier asks yes/no questions with, for `soft_constraints: engine`: its own HF copy
    of the judge's model, built in the verifier's process on CPU (None when soft constraints are not
    sent to a model)."""
    if cfg.reward.verifier.soft_constraints != "engine":
        return None
    from functools import partial

    from rlmr.engine import build_engine

    writing = cfg.reward.writing
    source = writing.model or cfg.model.source
    return partial(
        build_engine,
        source,
        HFEngine(device="cpu", batch_size=8),
        dtype="float32",
        max_model_len=writing.max_judge_len,
    )


class VerifierCalls:
    """The verifier role's call, on the checker `setup_verifier` builds (a verifier worker's, or the
    one a colocated learner builds beside its engine)."""

    def setup_verifier(self, config: VerifierConfig, engine=None) -> None:
        """`engine`: a `TextEngine`, or a zero-argument callable that builds one in this process,
        for soft constraints when `config.soft_constraints == "engine"`; ignored otherwise."""
        from rlmr.verify import SoftConstraintChecker, verify_response

        self.verifier_config = config
        self.soft_checker = None
        if config.soft_constraints == "engine":
            if engine is None:
                raise ValueError(
                    "reward.verifier.soft_constraints: engine needs a text engine: pass engine= (a "
                    "TextEngine or a factory) to VerifierWorker, "
                    "or set soft_constraints: unverifiable"
                )
            self.soft_checker = SoftConstraintChecker(engine() if callable(engine) else engine)
        self.checked = 0
        # Load the language profiles, the Punkt model and NLTK's tokenizer now, not on the first
        # group.
        verify_response(
            "Warm up the verifier. It is READY now.",
            [
                {"type": "language:response_language", "language": "en"},
                {
                    "type": "change_case:capital_word_frequency",
                    "capital_frequency": 1,
                    "capital_relation": "at least",
                },
            ],
        )

    def check(self, groups: list[Group]) -> list[Verdicts]:
        """The verdicts on every response of every group, against its prompt's constraints."""
        from rlmr.verify import VerifyGroup, verify_groups
        from rlmr.verify.api import group_verdicts

        checks = verify_groups(
            [VerifyGroup(g.row.constraints, g.texts) for g in groups],
            loose=self.verifier_config.loose,
            judge_directed_text=self.verifier_config.judge_directed_text,
            soft_checker=self.soft_checker,
        )
        self.checked += sum(len(c.responses) for c in checks)
        return [group_verdicts(c) for c in checks]

    def verifier_info(self) -> dict:
        return {
            "pid": os.getpid(),
            "checked": self.checked,
            "config": self.verifier_config.model_dump(),
            "soft_constraints": "engine" if self.soft_checker else "unverifiable",
        }


@ray.remote(num_cpus=1, num_gpus=0)
class VerifierWorker(VerifierCalls):
    def __init__(self, config: VerifierConfig, engine=None):
        self.setup_verifier(config, engine)

    def info(self) -> dict:
        return self.verifier_info()

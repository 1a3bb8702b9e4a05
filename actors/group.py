"""`ActorGroup`: the replicas of one role, started into their bundles and called together.

One generic group serves every role, so each role's actor class holds only
its own logic: the group starts the replicas, splits work across them in
order (`map`), hands each replica its own part (`call_each`), calls them all
the same way (`call_all`), gathers the answers, and stops them.

    verifier = ActorGroup.start(
        VerifierWorker, plan.replicas["verifier"], options_for, cfg.reward.verifier
    )
    verdicts = verifier.map("check_groups", groups)            # results in the order of `groups`
    pending = verifier.map_async("check_groups", groups)       # ... while something else runs
    verdicts = pending.get()
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import ray

from rlmr.core.records import split_evenly


class Pending:
    """Calls in flight; `get()` waits and concatenates their list results in call order."""

    def __init__(self, refs: list):
        self.refs = refs

    def get(self) -> list:
        return [x for part in ray.get(self.refs) for x in part]


class ActorGroup:
    """A role's actors, in replica order."""

    def __init__(self, actors: Sequence):
        if not actors:
            raise ValueError("an actor group needs at least one actor")
        self.actors = list(actors)

    @classmethod
    def start(
        cls, actor_cls, placements: Sequence, options_for: Callable[[object], dict], *args, **kwargs
    ) -> ActorGroup:
        """One `actor_cls` per placement, with `options_for(placement)` (bundle, CPUs, GPUs) and
        these args."""
        return cls(
            [actor_cls.options(**options_for(p)).remote(*args, **kwargs) for p in placements]
        )

    def __len__(self) -> int:
        return len(self.actors)

    def map_async(self, method: str, items: Sequence, *args) -> Pending:
        """Split `items` into contiguous, nearly equal chunks, one per actor (fewer when items are
        few)."""
        chunks = split_evenly(list(items), len(self.actors))
        return Pending(
            [getattr(a, method).remote(chunk, *args) for a, chunk in zip(self.actors, chunks)]
        )

    def map(self, method: str, items: Sequence, *args) -> list:
        """`map_async(...).get()`: one result per item, in the order of `items`."""
        return self.map_async(method, items, *args).get()

    def call_each(self, method: str, parts: Sequence, *args) -> list:
        """Actor i gets `parts[i]` (one part per actor at most); returns their answers in order."""
        if len(parts) > len(self.actors):
            raise ValueError(f"{len(parts)} parts for {len(self.actors)} actors")
        return ray.get(
            [getattr(a, method).remote(part, *args) for a, part in zip(self.actors, parts)]
        )

    def call_all_async(self, method: str, *args) -> list:
        """The same call on every actor; returns the object refs."""
        return [getattr(a, method).remote(*args) for a in self.actors]

    def call_all(self, method: str, *args) -> list:
        """The same call on every actor; returns every answer, in actor order."""
        return ray.get(self.call_all_async(method, *args))

    def kill(self) -> None:
        for actor in self.actors:
            ray.kill(actor, no_restart=True)

"""`ActorGroup`: the replicas of one role, started into their bundles and called together.

One generic group serves every role, so each role's actor class holds only
its own logic: the group starts the replicas, splits work across them in
order (`map`), hands each replica its own part (`call_each`), calls them all
the same way (`call_all`), gathers the answers, and stops them.

    verifier = ActorGroup.start(
        VerifierWorker, plan.replicas["verifier"], options_for, cfg.reward.verifier,
        faults=FaultPolicy(role="verifier", restarts=3, timeout_s=600),
    )
    verdicts = verifier.map("check_groups", groups)            # results in the order of `groups`
    pending = verifier.map_async("check_groups", groups)       # ... while something else runs
    verdicts = pending.get()
    for i, part in rollout.map_async("sample", rows, params).as_completed():  # first done first
        ...

Faults: a replica that dies (its process killed, its node lost) is restarted
by Ray (`max_restarts`), and every call it had not answered is sent again,
with the same arguments, to the restarted replica, after the role's
`on_restart` hook (the rollout engines take the learner's current weights
there). A call that does not answer within `timeout_s` counts the same: its
replica is killed and restarted. Each call is retried at most `restarts` times;
then `ActorFailed` names the role, the replica, the call and the cause. Answers
are kept in call order, so a retried call replaces its own lost answer: no
item is lost or counted twice. A fault seen by calls on two threads restarts the replica
once (and runs `on_restart` once); the other calls are only sent again.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import ray
from ray.exceptions import ActorUnavailableError, GetTimeoutError, RayActorError

from rlmr.core.records import split_evenly

# A replica that died (or was killed) and one that is restarting: both count as a fault.
LOST = (RayActorError, ActorUnavailableError)


class ActorFailed(RuntimeError):
    """A replica died or hung more often than its role may retry; the message names it."""


@dataclass
class FaultPolicy:
    """How a role survives its replicas' faults. `restarts` 0: the first fault stops the run."""

    role: str = "actor"
    restarts: int = 0
    timeout_s: float | None = None
    on_restart: Callable[[object], None] | None = None  # called with the restarted actor
    restart_timeout_s: float = 1800.0  # how long a restarting replica may take to be back


@dataclass
class _Call:
    replica: int
    method: str
    args: tuple
    ref: object  # None when resending failed: `error` is then the fault to count
    error: Exception | None = None
    timeout_s: float | None = None  # this call's hang limit, when not the role's
    generation: int = 0  # how often its replica had been restarted when the call was sent


class Pending:
    """Calls in flight; `get()` waits and concatenates their list results in call order."""

    def __init__(self, group: ActorGroup, calls: list[_Call]):
        self.group, self.calls = group, calls

    def results(self) -> list:
        """Each call's answer, in call order, retrying the calls of replicas that failed."""
        return [self.group._answer(call) for call in self.calls]

    def get(self) -> list:
        return [x for part in self.results() for x in part]

    def as_completed(self):
        """`(call index, answer)` for each call, the first to finish first; a replica that failed
        is retried as in `results()`. When no call finishes within the shortest hang limit among
        those left, that call counts as hung at once (it has waited its limit out)."""
        left = dict(enumerate(self.calls))
        while left:
            refs = {c.ref: i for i, c in left.items() if c.ref is not None}
            limits = {i: c.timeout_s or self.group.faults.timeout_s for i, c in left.items()}
            limits = {i: t for i, t in limits.items() if t is not None}
            shortest = min(limits.values(), default=None)
            ready = []
            if refs:
                ready, _ = ray.wait(list(refs), num_returns=1, timeout=shortest)
            if ready:
                index = refs[ready[0]]
                yield index, self.group._answer(left.pop(index))
                continue
            # Nothing answered within the shortest limit: that call has waited it out already.
            index = min(limits, key=limits.get) if limits else next(iter(left))
            yield index, self.group._answer(left.pop(index), waited=bool(refs))


class ActorGroup:
    """A role's actors, in replica order."""

    def __init__(self, actors: Sequence, faults: FaultPolicy | None = None):
        if not actors:
            raise ValueError("an actor group needs at least one actor")
        self.actors = list(actors)
        self.faults = faults or FaultPolicy()
        self.retries = 0  # calls sent again after a fault, over the group's life
        self._generation = [0] * len(self.actors)  # restarts per replica, by this group
        self._restarting = threading.Lock()

    @classmethod
    def start(
        cls,
        actor_cls,
        placements: Sequence,
        options_for: Callable[[object], dict],
        *args,
        faults: FaultPolicy | None = None,
        **kwargs,
    ) -> ActorGroup:
        """One `actor_cls` per placement, with `options_for(placement)` (bundle, CPUs, GPUs),
        Ray's `max_restarts` from `faults`, and these args."""
        faults = faults or FaultPolicy()
        return cls(
            [
                actor_cls.options(max_restarts=faults.restarts, **options_for(p)).remote(
                    *args, **kwargs
                )
                for p in placements
            ],
            faults,
        )

    def __len__(self) -> int:
        return len(self.actors)

    def _submit(self, replica: int, method: str, *args, timeout_s: float | None = None) -> _Call:
        generation = self._generation[replica]
        ref = getattr(self.actors[replica], method).remote(*args)
        return _Call(replica, method, args, ref, timeout_s=timeout_s, generation=generation)

    def _answer(self, call: _Call, waited: bool = False):
        """The call's answer; a replica that died or hung is restarted and asked again.
        `waited`: the caller has already waited the call's limit out (its first look does not
        wait again)."""
        policy = self.faults
        timeout_s = call.timeout_s or policy.timeout_s
        for attempt in range(policy.restarts + 1):
            try:
                if call.ref is None:
                    raise call.error
                return ray.get(call.ref, timeout=0 if waited and attempt == 0 else timeout_s)
            except (*LOST, GetTimeoutError) as err:
                hung = isinstance(err, GetTimeoutError)
                cause = (
                    f"no answer within {timeout_s:g} s"
                    if hung
                    else f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
                )
                where = f"{policy.role} replica {call.replica}, call {call.method}"
                if attempt == policy.restarts:
                    raise ActorFailed(
                        f"{where}: {cause}; gave up after {policy.restarts} restart(s) "
                        f"(cluster.actor_restarts)"
                    ) from err
                print(
                    f"rlmr: {where}: {cause}; restarting it and sending the call again "
                    f"(retry {attempt + 1} of {policy.restarts})",
                    file=sys.stderr,
                )
                actor = self.actors[call.replica]
                # One restart per fault, even when calls on two threads (sampling ahead and
                # evaluating) both see it: the second finds the replica already restarted.
                with self._restarting:
                    self.retries += 1
                    try:
                        if self._generation[call.replica] == call.generation:
                            if hung:  # Ray restarts a replica it kills without no_restart
                                ray.kill(actor, no_restart=False)
                            self._wait_restarted(actor)
                            if policy.on_restart is not None:
                                policy.on_restart(actor)
                            self._generation[call.replica] += 1
                        call.generation = self._generation[call.replica]
                        call.ref = getattr(actor, call.method).remote(*call.args)
                    except LOST as again:  # lost again before the call was sent: next attempt
                        call.ref, call.error = None, again
        raise AssertionError("unreachable")  # pragma: no cover

    def _wait_restarted(self, actor) -> None:
        """Until the replica's constructor has run again (Ray refuses calls while it restarts);
        a replica Ray will not restart raises at once."""
        deadline = time.monotonic() + self.faults.restart_timeout_s
        while True:
            try:
                ray.get(actor.__ray_ready__.remote(), timeout=self.faults.restart_timeout_s)
                return
            except ActorUnavailableError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def map_async(self, method: str, items: Sequence, *args) -> Pending:
        """Split `items` into contiguous, nearly equal chunks, one per actor (fewer when items are
        few)."""
        chunks = split_evenly(list(items), len(self.actors))
        return Pending(self, [self._submit(i, method, c, *args) for i, c in enumerate(chunks)])

    def map(self, method: str, items: Sequence, *args) -> list:
        """`map_async(...).get()`: one result per item, in the order of `items`."""
        return self.map_async(method, items, *args).get()

    def call_each(
        self, method: str, parts: Sequence, *args, timeout_s: float | None = None
    ) -> list:
        """Actor i gets `parts[i]` (one part per actor at most); returns their answers in order.
        `timeout_s`: this call's hang limit instead of the role's (a start-up call such as a
        learner's setup gets the start-up budget)."""
        if len(parts) > len(self.actors):
            raise ValueError(f"{len(parts)} parts for {len(self.actors)} actors")
        calls = [
            self._submit(i, method, part, *args, timeout_s=timeout_s)
            for i, part in enumerate(parts)
        ]
        return Pending(self, calls).results()

    def call_all_async(self, method: str, *args) -> Pending:
        """The same call on every actor, in flight; `.results()` gives every answer."""
        return Pending(self, [self._submit(i, method, *args) for i in range(len(self.actors))])

    def call_all(self, method: str, *args) -> list:
        """The same call on every actor; returns every answer, in actor order."""
        return self.call_all_async(method, *args).results()

    def kill(self) -> None:
        for actor in self.actors:
            ray.kill(actor, no_restart=True)

"""`ActorGroup` call limits in a real local Ray: the role's hang limit applies to every call, a
start-up call (a learner's setup) may be given the start-up budget instead."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_a_slow_call_is_a_hang_unless_given_its_own_limit(ray_session):
    from actors.group import ActorFailed, ActorGroup, FaultPolicy

    @ray_session.remote(num_cpus=0.5)
    class Slow:
        def wait(self, seconds):
            import time

            time.sleep(seconds)
            return seconds

    group = ActorGroup.start(
        Slow, [0], lambda p: {}, faults=FaultPolicy(role="learner", restarts=0, timeout_s=1.0)
    )
    assert group.call_each("wait", [0.1]) == [0.1]
    with pytest.raises(ActorFailed, match=r"^learner replica 0, call wait: no answer within 1 s"):
        group.call_each("wait", [3.0])
    group = ActorGroup.start(
        Slow, [0], lambda p: {}, faults=FaultPolicy(role="learner", restarts=0, timeout_s=1.0)
    )
    assert group.call_each("wait", [3.0], timeout_s=30.0) == [3.0]  # e.g. setup: start-up budget
    group.kill()

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


def test_answers_stream_fastest_first_and_a_lost_call_is_sent_again(ray_session, tmp_path):
    """`Pending.as_completed`: the replica that answers first comes first, with its call index;
    a replica that dies mid-call is restarted and its call answered, nothing lost or doubled."""
    import os

    from actors.group import ActorGroup, FaultPolicy

    @ray_session.remote(num_cpus=0.5)
    class Worker:
        def work(self, items, seconds, die_once=None):
            import time

            if die_once and items[0] == "b" and not os.path.exists(die_once):
                open(die_once, "w").close()
                os._exit(1)  # this replica's process dies once; Ray restarts it
            time.sleep(seconds if items[0] == "a" else 0.0)
            return [x.upper() for x in items]

    group = ActorGroup.start(
        Worker, [0, 1], lambda p: {}, faults=FaultPolicy(role="rollout", restarts=1, timeout_s=60)
    )
    answers = list(group.map_async("work", ["a", "b"], 2.0).as_completed())
    assert answers == [(1, ["B"]), (0, ["A"])]  # replica 1 answered first

    answers = dict(group.map_async("work", ["a", "b"], 0.0, str(tmp_path / "died")).as_completed())
    assert answers == {0: ["A"], 1: ["B"]}
    assert group.retries == 1
    group.kill()


def test_a_hang_seen_by_two_threads_restarts_the_replica_once(ray_session, tmp_path):
    """The sampling thread and an evaluation both wait on one hung replica: one restart and one
    `on_restart` (the rollout's weight reload), both calls answered; the second thread finds
    the replica restarted and only sends its call again."""
    import threading
    import time

    from actors.group import ActorGroup, FaultPolicy

    starts = tmp_path / "starts"

    @ray_session.remote(num_cpus=0.5)
    class HangsFirst:
        def __init__(self, path):
            with open(path, "a") as f:
                f.write("x")
            self.first = open(path).read() == "x"  # the first incarnation hangs

        def work(self, items):
            import time

            if self.first:
                time.sleep(300)
            return [x * 2 for x in items]

    group = ActorGroup.start(
        HangsFirst,
        [0],
        lambda p: {},
        str(starts),
        faults=FaultPolicy(
            role="judge", restarts=2, timeout_s=2.0, on_restart=lambda actor: reloads.append(1)
        ),
    )
    answers, reloads = {}, []

    def call(x):
        answers[x] = group.map("work", [x])

    threads = [threading.Thread(target=call, args=(x,)) for x in (1, 2)]
    for t in threads:
        t.start()
        time.sleep(0.5)  # the second call queues behind the first on the hung replica
    for t in threads:
        t.join(timeout=120)
    assert answers == {1: [2], 2: [4]}
    assert starts.read_text() == "xx"  # one restart, not one per thread
    assert reloads == [1]
    assert group.retries == 2
    group.kill()


def test_a_streamed_call_that_hangs_is_given_up_after_its_limit_not_twice_it(ray_session):
    import time

    from actors.group import ActorFailed, ActorGroup, FaultPolicy

    @ray_session.remote(num_cpus=0.5)
    class Slow:
        def work(self, items):
            time.sleep(60)
            return items

    group = ActorGroup.start(
        Slow, [0], lambda p: {}, faults=FaultPolicy(role="rollout", restarts=0, timeout_s=3.0)
    )
    started = time.monotonic()
    with pytest.raises(ActorFailed, match=r"^rollout replica 0, call work: no answer within 3 s"):
        list(group.map_async("work", ["a"]).as_completed())
    assert time.monotonic() - started < 5.5  # one limit (3 s) and the kill, not two limits (6 s)
    group.kill()

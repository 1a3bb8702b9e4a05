"""Actors that cannot start stop the run with their names and what they asked for, instead of a
driver that waits forever (real Ray, CPU)."""

from __future__ import annotations

import pytest
import ray

from rlmr.config import ClusterConfig
from rlmr.config.placement import plan_placement

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@ray.remote
class Idle:
    def __init__(self, fail: bool = False):
        if fail:
            raise ValueError("the model folder /models/x does not exist")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _started(pg, plan, **override):
    from actors.placement import actor_options

    actors, asked = {}, {}
    for role, reps in plan.replicas.items():
        for r in reps:
            opts = {**actor_options(pg, r), **override.get(role, {})}
            asked.setdefault(role, []).append(opts)
            actors.setdefault(role, []).append(Idle.options(**opts).remote())
    return actors, asked


def test_actor_startup_is_bounded_and_names_what_did_not_start(local_ray):
    from ray.util.placement_group import remove_placement_group

    from actors.placement import create_placement_group, placed_plan, wait_ready

    cluster = ClusterConfig(
        learner={"replicas": 1, "cpus": 0.5},
        rollout={"replicas": 1, "cpus": 0.5},
        reference={"replicas": 0},
        genrm={"replicas": 0},
        verifier={"replicas": 1, "cpus": 0.5},
    )
    plan = plan_placement(cluster)
    pg = create_placement_group(plan)
    try:
        plan = placed_plan(pg, plan)  # one node: the plan as it was
        assert plan.replicas == plan_placement(cluster).replicas

        actors, asked = _started(pg, plan)
        wait_ready(actors, asked, timeout_s=60)  # everything fits: returns

        # A second rollout actor into the bundle the first one holds waits for CPUs that never
        # free up (as an engine waits for GPUs another role holds).
        late = Idle.options(**asked["rollout"][0]).remote()
        with pytest.raises(RuntimeError) as err:
            wait_ready({**actors, "rollout": [late]}, asked, timeout_s=3)
        message = str(err.value)
        assert "1 actor(s) did not start within 3 s (cluster.startup_timeout_s)" in message
        assert "rollout replica 0: num_gpus=0 num_cpus=0.5 bundle 1" in message
        assert "learner" not in message.split("free resources")[0]
        for a in [late] + [a for acts in actors.values() for a in acts]:
            ray.kill(a)

        # A constructor that raises surfaces its own error, not a timeout.
        failing = {"learner": [Idle.options(**asked["learner"][0]).remote(fail=True)]}
        with pytest.raises(ray.exceptions.RayActorError, match="/models/x does not exist"):
            wait_ready(failing, {"learner": asked["learner"]}, timeout_s=60)
    finally:
        remove_placement_group(pg)

"""The cluster section of a run config: actor counts, GPUs and CPUs per role, restarts and timeouts.

`ClusterConfig` is validated by the pure placement planner (`rlmr.config.placement`),
so a layout that does not fit the declared nodes is refused when the config loads.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from rlmr.config.models import Strict


class CPUResources(Strict):
    """How many actors a CPU-only role gets (the verifier) and the CPUs each holds."""

    replicas: int = Field(1, ge=0, le=4096)
    cpus: float = Field(1.0, ge=0.0, le=256.0, description="CPUs per replica.")


class RoleResources(Strict):
    """How many actors a role gets and what each one holds."""

    replicas: int = Field(1, ge=0, le=4096)
    gpus: float = Field(
        0.0,
        ge=0.0,
        le=8.0,
        description="GPUs per replica; "
        "a fraction below 1 shares a GPU with another role's replica.",
    )
    cpus: float = Field(1.0, ge=0.0, le=256.0, description="CPUs per replica.")


class ClusterConfig(Strict):
    """Actor counts and placement."""

    nodes: int = Field(1, ge=1, le=4096)
    gpus_per_node: int = Field(0, ge=0, le=16, description="0 = CPU-only cluster.")
    colocate: bool = Field(
        False,
        description="The rollout engine, the reference model and the constraint verifier run in "
        "the learner's process: the engine generates with the learner's own weights (no weight "
        "sync, no second copy of the policy, three processes fewer), as verl's hybrid engine on "
        "one rank. Needs one learner rank, one rollout replica, at most one reference and one "
        "verifier replica, an HF rollout engine (vLLM would need its sleep mode), ZeRO stage 0-2 "
        "and rollout.max_staleness 0 (the engine samples between updates). cluster.rollout, "
        "cluster.reference and cluster.verifier then take no resources of their own; the engine "
        "runs on the learner's device.",
    )
    startup_timeout_s: float = Field(
        1800.0,
        gt=0,
        description="How long the actors may take to start (load a model, start vLLM) before the "
        "run stops, naming each actor that did not start and what it asked for.",
    )
    actor_restarts: int = Field(
        3,
        ge=0,
        le=100,
        description="How often a rollout, judge, reference or verifier replica may die or hang "
        "and be restarted (its unanswered calls sent again) before the run stops naming it. "
        "Learner ranks are never restarted: a lost rank stops the run (continue with --resume).",
    )
    call_timeout_s: float | None = Field(
        3600.0,
        gt=0,
        description="A call to any actor (a rollout batch, a judging batch, an update) that has "
        "not answered after this long counts as a hang: the replica is restarted and the call "
        "sent again, as for a crash (null = wait forever).",
    )
    rollout: RoleResources = Field(default_factory=RoleResources)
    genrm: RoleResources = Field(default_factory=RoleResources)
    reference: RoleResources = Field(default_factory=RoleResources)
    learner: RoleResources = Field(
        default_factory=RoleResources, description="replicas = DeepSpeed ranks."
    )
    verifier: CPUResources = Field(
        default_factory=CPUResources, description="The constraint verifier runs on CPU only."
    )

    @model_validator(mode="after")
    def _check(self):
        if self.colocate:
            for role, most in (("learner", 1), ("rollout", 1), ("reference", 1), ("verifier", 1)):
                if getattr(self, role).replicas > most:
                    raise ValueError(
                        f"{role}.replicas: {getattr(self, role).replicas}, but colocate: true "
                        "runs the rollout engine, the reference and the verifier in the one "
                        f"learner rank's process (at most {most})"
                    )
        for role in ("learner", "reference"):
            if getattr(self, role).gpus > 1:
                raise ValueError(
                    f"{role}.gpus: {getattr(self, role).gpus:g}, but a {role} replica runs on one "
                    "GPU (the reference holds a whole copy; learner ranks shard with ZeRO); "
                    "add replicas instead"
                )
        if self.learner.replicas < 1:
            raise ValueError("learner.replicas: must be at least 1")
        if self.rollout.replicas < 1:
            raise ValueError("rollout.replicas: must be at least 1")
        if self.gpus_per_node == 0:
            for role in ("rollout", "genrm", "reference", "learner"):
                if getattr(self, role).gpus:
                    raise ValueError(f"{role}.gpus: is set but gpus_per_node is 0")
        # The placement planner is the one authority on what fits (pure, no Ray).
        from rlmr.config.placement import PlacementError, plan_placement

        try:
            plan_placement(self)
        except PlacementError as err:
            raise ValueError(str(err)) from None
        return self

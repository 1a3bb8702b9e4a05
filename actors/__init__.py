"""Ray actors: thin shells, one file per role, over the pure core in `rlmr/`.

group.py      ActorGroup: the replicas of one role, started together, work split in order
learner.py    LearnerWorker: one DeepSpeed rank of the policy (rlmr.training.learner)
rollout.py    RolloutWorker: a text engine sampling groups (rlmr.training.rollout)
reference.py  ReferenceWorker: frozen reference log-probs (only when algo.kl.beta > 0)
colocated.py  ColocatedWorker: the learner rank with the rollout engine, reference and verifier
              inside (cluster.colocate: the engine generates with the learner's own weights)
genrm.py      GenRMWorker: the generative pairwise judge (rlmr.judge)
verifier.py   VerifierWorker: the constraint verifier (rlmr.verify)
placement.py  placement group + scheduling options from rlmr.config.placement's plan
process.py    thread and accelerator setup of a model-holding actor
services.py   RayServices: the driver's Services over all of the above
"""

"""The training runtime, without Ray: the loop, the learner, rollout and the run directory.

- `driver`: the RLMR loop, talking to its workers only through the `Services` protocol;
- `learner`: one DeepSpeed rank of the policy (log-probs, GRPO loss, steps, checkpoints);
- `rollout`: prompt rows -> groups of sampled responses through any text engine;
- `run_dir`, `storage`: metrics, samples, atomic checkpoints, on a local path or an fsspec URI;
- `plots`: training curves.

`actors/` runs these pieces in Ray actors; `tests/fake_services.py` runs the
same driver in-process.
"""

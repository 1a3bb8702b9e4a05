"""User data files: JSONL read with line numbers, prompt rows validated before any model starts.

- `jsonl`: the one JSONL reader every user file goes through (bad lines reported by number);
- `prompts`: prompt rows (JSONL, Parquet, saved dataset folder) and the resumable seeded sampler.
"""

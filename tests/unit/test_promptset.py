"""The shipped prompt set equals its generator's output, is big enough, and every constraint
parses."""

from __future__ import annotations

import collections
import json
from pathlib import Path

from rlmr.data.prompts import load_prompts
from rlmr.tools.promptset import ASSETS as GENERATOR_OUT
from rlmr.tools.promptset import TINY_WORDS, generate, generate_tiny
from rlmr.verify.constraints import parse_constraints

ASSETS = Path(__file__).resolve().parents[2] / "rlmr" / "assets" / "prompts"


def _read(name):
    return [json.loads(line) for line in (ASSETS / name).read_text(encoding="utf-8").splitlines()]


def test_shipped_files_equal_the_generator():
    assert GENERATOR_OUT == ASSETS  # `python -m rlmr.tools.promptset` rewrites the shipped files
    train, heldout = generate()
    assert _read("train.jsonl") == train
    assert _read("heldout.jsonl") == heldout
    tiny_train, tiny_heldout = generate_tiny()
    assert _read("tiny-train.jsonl") == tiny_train
    assert _read("tiny-heldout.jsonl") == tiny_heldout


def test_tiny_set_asks_for_one_word_limit_and_splits_like_the_main_set():
    train, heldout = _read("tiny-train.jsonl"), _read("tiny-heldout.jsonl")
    assert (len(train), len(heldout)) == (26, 6)
    assert not {r["id"] for r in train} & {r["id"] for r in heldout}
    for r in train + heldout:
        assert r["constraints"] == [{"type": "creative:word_count", "max": TINY_WORDS}]
        assert f"at most {TINY_WORDS} words" in r["prompt"]


def test_size_kinds_constraints_and_split():
    train, heldout = _read("train.jsonl"), _read("heldout.jsonl")
    rows = train + heldout
    assert len(rows) >= 300 and len(heldout) >= 60
    assert not {r["id"] for r in train} & {r["id"] for r in heldout}
    kinds = collections.Counter(r["id"].split("-")[0] for r in rows)
    assert set(kinds) == {"story", "poem", "script", "copy"}
    for r in rows:
        assert 1 <= len(r["constraints"]) <= 4
        parse_constraints(r["constraints"])
        assert len({c["type"] for c in r["constraints"]}) == len(r["constraints"])
    # Held-out prompts exercise the same constraint types as training.
    types = lambda rs: {c["type"] for r in rs for c in r["constraints"]}  # noqa: E731
    assert types(heldout) <= types(train)


def test_loader_accepts_the_shipped_files():
    rows = load_prompts(ASSETS / "heldout.jsonl", parse_constraints)
    assert len(rows) == len(_read("heldout.jsonl"))

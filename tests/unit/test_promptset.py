"""The shipped prompt set equals its generator's output, is big enough, and every constraint
parses."""

from __future__ import annotations

import collections
import json
from pathlib import Path

from rlmr.data.prompts import load_prompts
from rlmr.tools.promptset import generate
from rlmr.verify.constraints import parse_constraints

ASSETS = Path(__file__).resolve().parents[2] / "rlmr" / "assets" / "prompts"


def _read(name):
    return [json.loads(line) for line in (ASSETS / name).read_text(encoding="utf-8").splitlines()]


def test_shipped_files_equal_the_generator():
    train, heldout = generate()
    assert _read("train.jsonl") == train
    assert _read("heldout.jsonl") == heldout


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

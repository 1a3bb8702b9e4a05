"""The Arena-Hard creative-writing preference builder: families, prompt-level split, resumable."""

from __future__ import annotations

import json
import re

import pytest

from rlmr.data.pairs import load_pairs
from rlmr.tools import arena_pairs


@pytest.fixture(scope="module")
def questions():
    return arena_pairs.creative_questions(arena_pairs.arena_folder())


def test_the_installed_package_gives_the_250_creative_questions_with_two_answers(questions):
    assert len(questions) == 250
    assert all(
        q["strong"].strip() and q["other"].strip() and q["prompt"].strip() for q in questions
    )


def test_pairs_split_by_prompt_and_every_family_is_there(questions, tmp_path):
    weak = {q["uid"]: f"A weak answer {i}." for i, q in enumerate(questions)}
    train, heldout = arena_pairs.build(questions, weak, seed=0)
    prompt_of = lambda rows: {r["id"].split("/")[0] for r in rows}  # noqa: E731
    assert not prompt_of(train) & prompt_of(heldout)
    assert len(prompt_of(heldout)) == 50 and len(prompt_of(train)) == 200
    kinds = {r["kind"] for r in train} | {r["kind"] for r in heldout}
    assert kinds == {"strong_vs_weak", "shuffled", "truncated", "looped", "constraint"}
    assert arena_pairs.build(questions, weak, seed=0) == (train, heldout)  # deterministic
    assert arena_pairs.build(questions, weak, seed=1)[1] != heldout
    for row in train + heldout:
        if row["kind"] == "constraint":
            word = re.compile(rf"\b{row['prompt'].rsplit(chr(34), 2)[1]}\b", re.IGNORECASE)
            assert word.search(row["chosen"]) and not word.search(row["rejected"])
        if row["kind"] == "strong_vs_weak":
            assert row["rejected"].startswith("A weak answer")
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in train))
    assert len(load_pairs(path)) == len(
        train
    )  # valid for the loader: no identical sides, ids unique


def test_weak_answers_are_kept_and_only_the_missing_ones_written(questions, tmp_path):
    asked = []

    def write(prompts):
        asked.append(len(prompts))
        return [f"answer to {p[:10]}" for p in prompts]

    path = tmp_path / "weak.jsonl"
    first = arena_pairs.generate_weak_answers(questions[:5], path, write, batch=2)
    assert asked == [2, 2, 1] and len(first) == 5
    asked.clear()
    again = arena_pairs.generate_weak_answers(questions[:7], path, write, batch=2)
    assert asked == [2] and again.keys() == {q["uid"] for q in questions[:7]}
    assert [json.loads(x)["uid"] for x in path.read_text().splitlines()] == [
        q["uid"] for q in questions[:7]
    ]

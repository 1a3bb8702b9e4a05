"""Judge training through the real loop (`run_training`, `task: judge`) over in-process fakes.

The fake policy answers every judge prompt with a verdict: the label of the
response containing "good" on samples 0 and 1, the other label on sample 2,
and a non-label on sample 3; its verdict distribution favours the first label.
"""

from __future__ import annotations

import json

import pytest
import torch

from rlmr.core.algo import group_advantages
from rlmr.core.shaping import entropy_shaped_rewards
from rlmr.data.pairs import PreferencePair
from rlmr.judge.prompts import PromptBuilder
from rlmr.judge.verdict import choose_verdict_labels
from rlmr.training.driver import run_training
from rlmr.training.judge_task import judge_held_out, judge_rows, read_judgments
from rlmr.training.run_dir import RunDir
from tests.fake_services import FakeServices, fake_run_config
from tests.fakes import (  # noqa: F401 (tiny_cache: a fixture)
    FakeEngine,
    FakeTokenizer,
    fenced_responses,
    preferring,
    tiny_cache,
)

PAIRS = [
    PreferencePair(id=f"p{i}", prompt=f"Write {i}.", chosen=f"good {i}", rejected=f"bad {i}")
    for i in range(4)
]
LABELS = choose_verdict_labels(FakeTokenizer())


def _verdict(prompt: str, i: int) -> str:
    fenced = fenced_responses(prompt)
    good = next(label for label, text in fenced if "good" in text)
    other = next(label for label, _ in fenced if label != good)
    return [good, good, other, "?"][i % 4]


class FakeJudgeServices(FakeServices):
    """FakeServices whose policy is a judge: its engine's samples are verdicts."""

    def __init__(self, p_first: float = 0.7):
        super().__init__(respond=_verdict)
        self.engine = FakeEngine(respond=_verdict, next_token=lambda p, c: [p_first, 1 - p_first])
        self.judged_pairs = []

    def read_judgments(self, groups):
        return read_judgments(self.engine, groups, LABELS, reasoning=False)

    def judge_held_out(self, pairs):
        self.judged_pairs.append(len(pairs))
        judge_engine = FakeEngine(next_token=preferring(lambda t: 1.0 + 3 * t.count("good")))
        from rlmr.config import JudgeTaskConfig

        return judge_held_out(judge_engine, pairs, JudgeTaskConfig(max_judge_len=4096))


def _cfg(tmp_path, *overrides):
    return fake_run_config(
        tmp_path,
        "task=judge",
        "trainer.steps=2",
        "trainer.eval_every=2",
        "checkpoint.every=1",
        "rollout.max_new_tokens=1",
        "judge.max_judge_len=1000",
        *overrides,
    )


def _rows():
    tok = FakeTokenizer()
    builder = PromptBuilder(tok, LABELS, max_len=4096, reasoning=False, max_analysis_tokens=16)
    return judge_rows(PAIRS, builder)


def test_judge_grpo_rewards_agreement_shaped_by_the_verdict_entropy(tmp_path):
    cfg = _cfg(tmp_path, "judge.shaping.floor=0.5", "data.shuffle=false")
    services = FakeJudgeServices(p_first=0.7)
    rows = run_training(cfg, services, RunDir(cfg), _rows(), PAIRS)
    assert [r["step"] for r in rows] == [0, 1, 2]
    step = rows[1]
    # Per group: two right verdicts, one wrong, one unreadable (-1).
    assert step["judge/agreement"] == 0.5 and step["judge/verdict_rate"] == 0.75
    h = -(0.7 * torch.tensor(0.7).log2() + 0.3 * torch.tensor(0.3).log2())
    correct = torch.tensor([[True, True, False, False]] * 2)
    expected = entropy_shaped_rewards(
        correct,
        torch.full((2, 4), 0.7, dtype=torch.float64),
        0.5,
        valid=torch.tensor([[True, True, True, False]] * 2),
    )
    assert expected[0, 0] == pytest.approx(0.5 + 0.5 * float(h))
    batch = services.batches[0]
    assert torch.equal(batch.advantages, group_advantages(expected).reshape(-1).float())
    assert step["judge/shaped_reward_mean"] == pytest.approx(float(expected.mean()))
    # The policy's sampled judgments are the learner's responses: one verdict token each.
    assert int(batch.response_mask.sum()) == 8
    # Held-out: the judge on both orders of every eval pair, at step 0 and at the end.
    assert services.judged_pairs == [4, 4]
    assert rows[0]["eval/agreement"] == 1.0 and rows[2]["eval/position_consistency"] == 1.0
    samples = [json.loads(x) for x in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    assert {s["verdict"] for s in samples} <= {"first", "second", None}


def test_without_shaping_the_rewards_are_plus_and_minus_one(tmp_path):
    cfg = _cfg(tmp_path, "judge.shaping.floor=1", "trainer.steps=1", "trainer.eval_at_start=false")
    services = FakeJudgeServices()
    rows = run_training(cfg, services, RunDir(cfg), _rows(), PAIRS)
    rewards = torch.tensor([[1.0, 1.0, -1.0, -1.0]] * 2, dtype=torch.float64)
    assert torch.equal(
        services.batches[0].advantages, group_advantages(rewards).reshape(-1).float()
    )
    assert rows[0]["judge/shaped_reward_mean"] == 0.0


def test_votes_shaping_uses_the_groups_split(tmp_path):
    cfg = _cfg(
        tmp_path,
        "judge.shaping.entropy=votes",
        "trainer.steps=1",
        "trainer.eval_at_start=false",
        "data.shuffle=false",
    )
    services = FakeJudgeServices(p_first=0.99)
    rows = run_training(cfg, services, RunDir(cfg), _rows(), PAIRS)
    # p0 forward (good first): 2 of 4 vote "first", H = 1; p0 backward: 1 of 4, H(0.25).
    h_quarter = -(0.25 * torch.tensor(0.25).log2() + 0.75 * torch.tensor(0.75).log2())
    assert rows[0]["judge/entropy_mean"] == pytest.approx((1.0 + float(h_quarter)) / 2)
    forward_right = 0.5 + 0.5 * 1.0  # uncertain and right: the most a judgment earns
    assert services.batches[0].advantages.shape == (8,)
    assert rows[0]["judge/shaped_reward_mean"] == pytest.approx(
        (
            2 * forward_right
            - (0.5 + 0.5 * 0.0)
            - 1.0  # right, right, wrong at H=1, unreadable
            + 2 * (0.5 + 0.5 * float(h_quarter))
            - (0.5 + 0.5 * (1 - float(h_quarter)))
            - 1.0
        )
        / 8
    )


class Recording(FakeJudgeServices):
    def __init__(self):
        super().__init__()
        self.params = []

    def sample(self, rows, params):
        self.params.append(params)
        return super().sample(rows, params)


def test_a_judgment_may_write_an_analysis_only_with_reasoning(tmp_path):
    for reasoning, expected in (("false", 1), ("true", 48 + 16)):
        cfg = _cfg(
            tmp_path / reasoning,
            f"judge.reasoning={reasoning}",
            "judge.max_analysis_tokens=48",
            "trainer.steps=1",
            "trainer.eval_at_start=false",
            "trainer.eval_every=0",
            "rollout.max_new_tokens=64",
        )
        services = Recording()
        run_training(cfg, services, RunDir(cfg), _rows(), ())
        assert [p.max_new_tokens for p in services.params] == [expected]


@pytest.mark.usefixtures("tiny_cache")
def test_the_judge_section_shapes_the_prompts_the_policy_sees(tmp_path):
    from rlmr.training.judge_task import judge_prompt_sets

    pairs = tmp_path / "pairs.jsonl"
    long = " ".join(["words"] * 400)
    pairs.write_text(
        "".join(
            json.dumps(
                {"id": f"p{i}", "prompt": "Write.", "chosen": long, "rejected": f"short {i}"}
            )
            + "\n"
            for i in range(2)
        )
    )
    base = [
        "model.source={type: tiny}",
        f"data.train={pairs}",
        f"data.eval={pairs}",
        "data.max_prompt_tokens=1000",
        "rollout.max_new_tokens=1",
    ]
    cfg = fake_run_config(tmp_path / "a", "task=judge", *base, "judge.max_judge_len=1000")
    rows, held_out = judge_prompt_sets(cfg)
    assert [r.id for r in rows] == ["p0/forward", "p0/backward", "p1/forward", "p1/backward"]
    assert len(held_out) == 2 and rows[0].label == "first" and rows[1].label == "second"
    assert rows[0].text.endswith("Verdict:") or rows[0].text.endswith("Verdict: ")
    small = fake_run_config(tmp_path / "b", "task=judge", *base, "judge.max_judge_len=600")
    short_rows, _ = judge_prompt_sets(small)
    assert len(short_rows[0].text) < len(rows[0].text) and "tokens omitted" in short_rows[0].text
    thinking = fake_run_config(
        tmp_path / "c", "task=judge", *base, "judge.reasoning=true", "judge.max_judge_len=1000"
    )
    assert judge_prompt_sets(thinking)[0][0].text.endswith("Analysis:\n")


def test_sft_takes_its_rows_and_epochs_from_the_judge_section(tmp_path):
    from rlmr.cli.sft import sft_plan

    chains = tmp_path / "chains.jsonl"
    chains.write_text(
        "".join(json.dumps({"prompt": f"p{i}", "completion": " A"}) + "\n" for i in range(20))
    )
    cfg = _cfg(
        tmp_path,
        f"judge.sft.data={chains}",
        "judge.sft.epochs=2",
        "trainer.steps=100",
        "data.eval=null",
        "trainer.eval_every=0",
    )
    planned, rows, held_out = sft_plan(cfg)
    assert len(rows) == 20 and held_out == []
    assert planned.trainer.steps == 5  # 2 epochs x 20 rows / (2 prompts x 4 samples) -> 5 steps
    assert planned.logging.run_name == cfg.logging.run_name + "-sft"
    once = _cfg(
        tmp_path,
        f"judge.sft.data={chains}",
        "judge.sft.epochs=1",
        "trainer.steps=100",
        "data.eval=null",
        "trainer.eval_every=0",
    )
    assert sft_plan(once)[0].trainer.steps == 3
    with pytest.raises(ValueError, match="judge.sft.data"):
        sft_plan(_cfg(tmp_path, "data.eval=null", "trainer.eval_every=0"))

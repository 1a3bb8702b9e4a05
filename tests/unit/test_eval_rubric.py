"""`rlmr eval --suite rubric`: the WritingBench queries it picks, one judge rating per criterion
with the criterion in the prompt, exact means, resume, bad input; then the real command."""

from __future__ import annotations

import json

import pytest

from rlmr.config import load_config
from rlmr.evals.generate import EvalError
from rlmr.evals.rubric import criterion_text, load_queries, run_rubric
from rlmr.evals.suites import EvalSettings
from rlmr.judge import GenerativeJudge, JudgeSettings
from tests.fakes import FakeEngine, preferring


def _item(name, description="How well it does.", **bands):
    return {"name": name, "criteria_description": description, **bands}


def _query(index, query, domain2, *names, lang="en", domain1="Literature & Arts"):
    return {
        "index": index,
        "domain1": domain1,
        "domain2": domain2,
        "lang": lang,
        "query": query,
        "checklist": [_item(n) for n in names],
    }


QUERIES = [
    _query(1, "Write a poem about frost.", "Poetry", "Vividness", "Form"),
    _query(2, "写一首诗。", "Poetry", "Vividness", lang="zh"),  # not English: skipped
    _query(3, "Draft a contract.", "Contract", "Clarity", domain1="Politics & Law"),  # skipped
    _query(4, "Write a scene in a lift.", "Screenplay", "Vividness", "Dialogue", "Pacing"),
    _query(5, "Write a haiku about salt.", "Poetry", "Form"),
]


def _data(tmp_path):
    path = tmp_path / "benchmark_all.jsonl"
    path.write_text("".join(json.dumps(q, ensure_ascii=False) + "\n" for q in QUERIES))
    return path


def test_a_criterion_reads_as_name_description_and_bands():
    item = _item("Imagery", "Concrete images.", **{"1-2": "None.", "9-10": "Striking."})
    assert criterion_text(item) == "Imagery: Concrete images.\n1-2: None.\n9-10: Striking."


def test_only_english_literature_and_arts_queries_are_read(tmp_path):
    queries = load_queries(_data(tmp_path))
    assert [(row.id, domain, len(c)) for row, domain, c in queries] == [
        ("1", "Poetry", 2),
        ("4", "Screenplay", 3),
        ("5", "Poetry", 1),
    ]


@pytest.mark.parametrize(
    "row, message",
    [
        ("not json", r":1: not valid JSON"),
        (
            json.dumps({**QUERIES[0], "checklist": []}),
            r":1: query and checklist: required$",
        ),
        (
            json.dumps({**QUERIES[0], "checklist": [{"name": "x"}]}),
            r":1: checklist\[0\].criteria_description: required text$",
        ),
    ],
)
def test_bad_rows_name_the_line_and_key(tmp_path, row, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(row + "\n")
    with pytest.raises(EvalError, match=message):
        load_queries(path)


def _judge():
    # The fake judge scores 8 on Vividness and 4 on any other criterion: the criterion must
    # reach the prompt for the scores to come out right.
    def next_token(prompt, candidates):
        score = 8 if "Vividness: How well it does." in prompt else 4
        return preferring(lambda text: score)(prompt, candidates)

    return GenerativeJudge(
        FakeEngine(next_token=next_token), JudgeSettings(strategy="pointwise", reasoning=False)
    )


def _run(repo, tmp_path, engine, judge, **kw):
    cfg = load_config(repo / "configs" / "tiny.yaml", ["model.chat_template=false"])
    settings = EvalSettings(model="m", out=tmp_path / "out", progress=False, **kw)
    return run_rubric(engine, cfg, settings, judge=lambda: judge, data=_data(tmp_path))


def test_scores_are_per_criterion_means_per_query_then_over_queries(repo, tmp_path):
    engine = FakeEngine(respond=lambda p, i: "" if "haiku" in p else "Some words.")
    summary = _run(repo, tmp_path, engine, _judge())
    # query 1: (8 + 4) / 2 = 6; query 4: (8 + 4 + 4) / 3; query 5: empty response, 1 unjudged
    expected = [6.0, 16 / 3, 1.0]
    assert summary["queries"] == 3 and summary["criteria"] == 6
    assert summary["score"]["value"] == round(sum(expected) / 3, 4)
    assert summary["per_domain"] == {
        "Poetry": {"queries": 2, "score": 3.5},
        "Screenplay": {"queries": 1, "score": round(16 / 3, 3)},
    }
    assert summary["empty_responses"] == 1
    scores = [json.loads(x) for x in (tmp_path / "out" / "scores.jsonl").read_text().splitlines()]
    assert [(s["id"], s["criterion"], s["score"]) for s in scores] == [
        ("1", "Vividness", pytest.approx(8.0)),
        ("1", "Form", pytest.approx(4.0)),
        ("4", "Vividness", pytest.approx(8.0)),
        ("4", "Dialogue", pytest.approx(4.0)),
        ("4", "Pacing", pytest.approx(4.0)),
        ("5", "Form", 1.0),
    ]
    assert scores[-1]["decided"] == "empty"


def test_an_interrupted_rating_resumes_with_whole_queries(repo, tmp_path):
    judge = _judge()
    first = _run(repo, tmp_path, FakeEngine(respond=lambda p, i: "Words."), judge, batch_prompts=1)
    path = tmp_path / "out" / "scores.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:3]) + "\n")  # query 1 whole, query 4 one criterion of three
    before = judge.stats["judge_prompts"]
    engine = FakeEngine(respond=lambda p, i: "Words.")
    again = _run(repo, tmp_path, engine, judge, batch_prompts=1)
    assert engine.calls == []  # every response was already written
    assert judge.stats["judge_prompts"] - before == 3 + 1  # queries 4 (whole) and 5 again
    assert [json.loads(x)["id"] for x in path.read_text().splitlines()] == ["1"] * 2 + ["4"] * 3 + [
        "5"
    ]  # the lone record of query 4 went; nothing is counted twice
    assert again["score"] == first["score"] and again["criteria"] == 6


def test_the_command_says_in_one_line_when_the_judge_cannot_rate(repo, tmp_path, capsys):
    from rlmr.cli import main

    args = ["eval", "base", "--suite", "rubric", "--limit", "2", "--no-progress"]
    args += ["--config", str(repo / "configs" / "tiny.yaml"), "--max-new-tokens", "6"]
    args += ["--rubric-data", str(_data(tmp_path)), "--out", str(tmp_path / "e")]
    assert main(args) == 2
    # the tiny tokenizer spells scores in pieces: no 1-10 rating; the responses are kept
    err = capsys.readouterr().err.strip()
    assert err.endswith(
        "rlmr eval: rubric: the judge's tokenizer has no single-token scores 1..9 after "
        "'Score:'; the pointwise strategy needs them (use a pairwise strategy, or another judge "
        "model)"
    )
    responses = (tmp_path / "e" / "rubric" / "responses.jsonl").read_text().splitlines()
    assert [json.loads(x)["id"] for x in responses] == ["1", "4"]

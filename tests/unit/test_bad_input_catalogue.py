"""Thirty kinds of bad input to `rlmr train`, each refused before any actor (or Ray) starts with
exit status 2 and a message that names the key, the file and row, or the file: config keys,
types and ranges, batch arithmetic, YAML, data files and rows, constraints, preference pairs.

(With `tests/unit/test_bad_input.py`, which covers a missing model folder, an unwritable output
directory, non-UTF-8 bytes, an existing run, a GPU layout without GPUs and a resume that changes
the data order.)"""

from __future__ import annotations

import json

import pytest

from rlmr.cli import main
from tests.unit.test_bad_input import _train, no_ray  # noqa: F401 (fixture)

GOOD = {
    "id": "a",
    "prompt": "Write a line.",
    "constraints": [{"type": "creative:word_count", "max": 5}],
}


def _row(**fields) -> str:
    return json.dumps({"id": "b", **fields})


# name -> (a second data row, or None for a --set override; the override or row; the message)
CONFIG = {
    "unknown key": ("rollout.nn=4", "--set rollout.nn: rollout.nn: unknown key"),
    "unknown section": ("rolout.n=4", "--set rolout.n: rolout: unknown key"),
    "wrong type": (
        "rollout.n=four",
        "rollout.n: Input should be a valid integer, unable to parse string as an integer "
        "(got 'four')",
    ),
    "out of range": (
        "rollout.temperature=-1",
        "rollout.temperature: Input should be greater than or equal to 0 (got -1)",
    ),
    "group size 1": ("rollout.n=1", "rollout.n: Input should be greater than or equal to 2"),
    "batch that does not divide": (
        "learner.micro_batch_size=3",
        "rollout.prompts_per_step: prompts_per_step * rollout.n = 8 responses per step must be "
        "divisible by cluster.learner.replicas * learner.micro_batch_size * "
        "learner.updates_per_step = 3",
    ),
    "negative learning rate": ("learner.lr=-0.1", "learner.lr: Input should be greater than 0"),
    "clip out of range": (
        "algo.clip={low: 2.0, high: 0.2}",
        "algo.clip.low: Input should be less than 1 (got 2.0)",
    ),
    "ZeRO stage": (
        "learner.zero_stage=5",
        "learner.zero_stage: Input should be less than or equal",
    ),
    "unknown reward strategy": (
        "reward.strategy=best",
        "reward.strategy: Input should be 'dynamic', 'writing_only', 'verifier_only' or 'fixed'",
    ),
    "unknown dtype": ("model.dtype=float8", "model.dtype: Input should be 'float32', 'bfloat16'"),
    "unknown model source": (
        "model.source={type: hub, name: x}",
        "model.source: Input tag 'hub' found using 'type' does not match any of the expected tags",
    ),
    "zero steps": ("trainer.steps=0", "trainer.steps: Input should be greater than or equal to 1"),
    "no prompts per step": (
        "rollout.prompts_per_step=0",
        "rollout.prompts_per_step: Input should be greater than or equal to 1",
    ),
    "no rollout replica": (
        "cluster.rollout={replicas: 0}",
        "cluster.rollout.replicas: must be at least 1",
    ),
    "override that is not YAML": ("rollout={n: [}", "--set rollout: value is not valid YAML"),
}

DATA = {
    "empty file": ("", "{file}: no prompt rows"),
    "blank lines only": ("\n\n", "{file}: no prompt rows"),
    "malformed line": ("{bad json", "{file}:2: not valid JSON (Expecting property name"),
    "row that is not an object": ("[1, 2]", "{file}:2: expected a JSON object, got list"),
    "missing prompt": (_row(), "{file}:2: prompt: required, text or a list of chat messages"),
    "empty prompt": (_row(prompt="  "), "{file}:2: prompt: empty"),
    "prompt that is not text": (
        _row(prompt=5),
        "{file}:2: prompt: required, text or a list of chat messages",
    ),
    "unknown constraint type": (
        _row(prompt="x", constraints=[{"type": "creative:rhyme_scheme"}]),
        "{file}:2: constraints: constraints[0]: type: unknown constraint type "
        "'creative:rhyme_scheme' (did you mean 'creative:word_count'?)",
    ),
    "constraint argument of the wrong type": (
        _row(prompt="x", constraints=[{"type": "creative:word_count", "max": "five"}]),
        "{file}:2: constraints: constraints[0] (creative:word_count): max: must be an integer, "
        "got 'five'",
    ),
    "constraint without its arguments": (
        _row(prompt="x", constraints=[{"type": "creative:word_count"}]),
        "{file}:2: constraints: constraints[0] (creative:word_count): min: give min, max or both",
    ),
    "constraint argument unknown": (
        _row(
            prompt="x",
            constraints=[
                {
                    "type": "length_constraints:number_words",
                    "relation": "less than",
                    "num_words": 5,
                    "colour": "red",
                }
            ],
        ),
        "{file}:2: constraints: constraints[0] (length_constraints:number_words): colour: "
        "unknown key (allowed: num_words, relation)",
    ),
    "constraints that are not a list": (
        _row(prompt="x", constraints={"type": "creative:word_count"}),
        '{file}:2: constraints: must be a list of {{"type": ..., ...}} objects',
    ),
    "duplicate ids": (json.dumps(GOOD), "{file}:2: id: 'a' repeats the id of {file}:1"),
    "prompt longer than allowed": (
        _row(prompt="word " * 400),
        "{file}: id 'b': prompt is 1214 tokens with the chat template; data.max_prompt_tokens "
        "is 256",
    ),
}


def _run(args, capsys) -> str:
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize("name", list(CONFIG))
def test_a_bad_config_value_names_its_key(name, repo, tmp_path, capsys, no_ray):  # noqa: F811
    override, message = CONFIG[name]
    err = _run(_train(repo, tmp_path, override), capsys)
    assert err.startswith("rlmr train: ")
    assert message in err


@pytest.mark.parametrize("name", list(DATA))
def test_a_bad_data_row_names_its_file_and_row(name, repo, tmp_path, capsys, no_ray):  # noqa: F811
    second, message = DATA[name]
    data = tmp_path / "prompts.jsonl"
    data.write_text("" if name in ("empty file", "blank lines only") else json.dumps(GOOD) + "\n")
    with data.open("a") as fh:
        fh.write(second + "\n" if second else "")
    err = _run(_train(repo, tmp_path, f"data.train={data}"), capsys)
    assert message.format(file=data) in err


@pytest.mark.parametrize("key", ["data.train", "data.eval"])
def test_a_data_file_that_does_not_exist_names_it(key, repo, tmp_path, capsys, no_ray):  # noqa: F811
    missing = tmp_path / "nope.jsonl"
    err = _run(_train(repo, tmp_path, f"{key}={missing}"), capsys)
    assert err.strip() == f"rlmr train: {missing}: prompt file not found"


def test_a_folder_that_is_not_a_dataset_names_it(repo, tmp_path, capsys, no_ray):  # noqa: F811
    err = _run(_train(repo, tmp_path, f"data.train={tmp_path}"), capsys)
    assert err.startswith(f"rlmr train: {tmp_path}: not a saved dataset folder")


def test_a_config_file_that_is_not_yaml_names_it(tmp_path, capsys, no_ray):  # noqa: F811
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [\n")
    err = _run(["train", str(bad)], capsys)
    assert err.startswith(f"rlmr train: {bad}: not valid YAML")


def test_a_preference_pair_with_the_same_two_texts_names_its_row(
    repo,
    tmp_path,
    capsys,
    no_ray,  # noqa: F811
):
    pairs = tmp_path / "pairs.jsonl"
    rows = [
        {"prompt": "Write a line.", "chosen": "A fine line.", "rejected": "line"},
        {"prompt": "Write a line.", "chosen": "Same.", "rejected": " Same. "},
    ]
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = ["train", str(repo / "configs" / "genrm-tiny.yaml")]
    for item in (f"logging.output_dir={tmp_path / 'runs'}", f"data.train={pairs}"):
        args += ["--set", item]
    err = _run(args, capsys)
    assert f"{pairs}:2: chosen and rejected are the same text" in err

"""Prompt loading (JSONL, Parquet, saved datasets), row validation, and the resumable sampler."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from rlmr.core.records import Group, PromptRow, Response, TokenBatch, TrainBatch
from rlmr.data.prompts import DataError, PromptSampler, load_prompts, parse_rows

ROWS = [
    {
        "id": "a",
        "prompt": "Write a poem about rain.",
        "constraints": [{"type": "word_count", "max_words": 50}],
    },
    {
        "prompt": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "A haiku on snow."},
        ],
        "constraints": [{"type": "lowercase"}],
        "context": "winter",
    },
    {"id": "c", "prompt": "Ad copy for tea.", "constraints": []},
]


def _jsonl(tmp_path, rows, name="p.jsonl"):
    p = tmp_path / name
    p.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return p


def test_jsonl_rows_load(tmp_path):
    rows = load_prompts(_jsonl(tmp_path, ROWS))
    assert [r.id for r in rows] == ["a", "p-1", "c"]
    assert rows[1].brief() == "A haiku on snow."
    assert rows[1].context == "winter"
    assert rows[0].constraints == ({"type": "word_count", "max_words": 50},)


def _in_fresh_interpreter(code: str) -> list[str]:
    """What `code` prints, split into words, run by a new Python: this one may hold the modules
    a test asks about already."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_a_jsonl_prompt_file_is_read_without_importing_datasets(tmp_path):
    # `datasets` brings pandas and pyarrow (about 100 MiB) into the driver: Parquet and dataset
    # folders only.
    path = _jsonl(tmp_path, ROWS)
    out = _in_fresh_interpreter(
        "import sys; from pathlib import Path; from rlmr.data.prompts import load_prompts; "
        f"rows = load_prompts(Path({str(path)!r})); "
        "print(len(rows), 'datasets' in sys.modules, 'pandas' in sys.modules)"
    )
    assert out == ["3", "False", "False"]


def test_the_driver_reads_its_prompt_sets_without_importing_transformers():
    # Checking prompt lengths needs the policy's tokenizer (transformers, about 125 MiB); the
    # driver lives for the whole run, so `rlmr train` reads the prompt sets in a process apart.
    repo = Path(__file__).resolve().parents[2]
    out = _in_fresh_interpreter(
        "import sys; from rlmr.config import load_config; from rlmr.cli.train import prompt_sets; "
        f"train, held = prompt_sets(load_config({str(repo / 'configs' / 'tiny.yaml')!r})); "
        "print(len(train) > 0, 'transformers' in sys.modules, 'tokenizers' in sys.modules)"
    )
    assert out == ["True", "False", "False"]


def test_an_error_reading_the_prompt_sets_comes_back_as_raised(tmp_path):
    from rlmr.cli.train import prompt_sets
    from rlmr.config import load_config

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "fine"}\n{"prompt": \n')
    repo = Path(__file__).resolve().parents[2]
    cfg = load_config(repo / "configs" / "tiny.yaml", [f"data.train={bad}"])
    with pytest.raises(DataError, match="bad.jsonl"):
        prompt_sets(cfg)


def test_parquet_and_saved_dataset_load_the_same_rows(tmp_path):
    import datasets

    flat = [
        {
            "id": r.get("id", f"x{i}"),
            "prompt": r["prompt"] if isinstance(r["prompt"], str) else "p",
            "constraints": r["constraints"],
        }
        for i, r in enumerate(ROWS)
    ]
    ds = datasets.Dataset.from_list(flat)
    ds.to_parquet(str(tmp_path / "p.parquet"))
    ds.save_to_disk(str(tmp_path / "saved"))
    a = load_prompts(tmp_path / "p.parquet")
    b = load_prompts(tmp_path / "saved")
    assert a == b
    # Arrow unifies constraint structs; the loader drops the null kwargs again.
    assert a[0].constraints == ({"type": "word_count", "max_words": 50},)
    assert a[1].constraints == ({"type": "lowercase"},)


def test_bad_rows_are_all_reported_with_line_numbers(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text(
        "\n".join(
            [
                json.dumps({"prompt": "ok", "id": "1"}),
                "{not json",
                json.dumps({"prompt": ""}),
            ]
        )
        + "\n"
    )
    with pytest.raises(DataError) as err:
        load_prompts(p)
    assert f"{p}:2: not valid JSON" in str(err.value)
    rows = [
        {"prompt": ""},
        {"prompt": "x", "constrains": []},
        {"prompt": [{"role": "bot", "content": "x"}]},
        {"prompt": "x", "constraints": [{"max": 3}]},
        {"prompt": "x", "id": "d"},
        {"prompt": "y", "id": "d"},
    ]
    with pytest.raises(DataError) as err:
        parse_rows(rows, "f.jsonl")
    msg = str(err.value)
    assert "5 bad row(s)" in msg
    assert "f.jsonl:1: prompt: empty" in msg
    assert "f.jsonl:2: unknown key(s) constrains" in msg
    assert "f.jsonl:3: prompt: message 0 has role 'bot'" in msg
    assert "f.jsonl:4: constraints: must be a list" in msg
    assert "f.jsonl:6: id: 'd' repeats the id of f.jsonl:5" in msg


def test_constraint_checker_errors_name_the_row():
    def check(cs):
        for c in cs:
            if c["type"] != "lowercase":
                raise ValueError(f"unknown constraint type {c['type']!r}")

    with pytest.raises(DataError, match=r"f.jsonl:2: constraints: unknown constraint type 'rhyme'"):
        parse_rows(
            [
                {"prompt": "a", "constraints": [{"type": "lowercase"}]},
                {"prompt": "b", "constraints": [{"type": "rhyme"}]},
            ],
            "f.jsonl",
            check,
        )


def test_missing_file_and_bad_type(tmp_path):
    with pytest.raises(DataError, match="prompt file not found"):
        load_prompts(tmp_path / "nope.jsonl")
    (tmp_path / "x.csv").write_text("a,b\n")
    with pytest.raises(DataError, match="unsupported file type '.csv'"):
        load_prompts(tmp_path / "x.csv")


def test_sampler_is_seeded_resumable_and_covers_every_row():
    rows = [PromptRow(id=str(i), prompt=f"p{i}") for i in range(10)]
    s = PromptSampler(rows, seed=3)
    first = [r.id for r in s.take(7)]
    state = s.state_dict()
    rest = [r.id for r in s.take(8)]
    assert sorted(first + rest[:3]) == [str(i) for i in range(10)]  # an epoch covers every row once
    resumed = PromptSampler(rows, seed=3)
    resumed.load_state_dict(state)
    assert [r.id for r in resumed.take(8)] == rest
    assert [r.id for r in PromptSampler(rows, seed=3).take(7)] == first
    with pytest.raises(DataError, match="seed"):
        PromptSampler(rows, seed=4).load_state_dict(state)


def test_train_batch_aligns_response_tokens_with_targets():
    row = PromptRow(id="a", prompt="x")
    g = Group(
        row,
        "x",
        (5, 6),
        (
            Response("r", (7, 8, 9), (-0.1, -0.2, -0.3), "stop"),
            Response("s", (7,), (-0.5,), "length"),
        ),
    )
    tokens = TokenBatch.from_groups([g], pad_token_id=0)
    batch = TrainBatch.of(tokens, torch.tensor([[1.0, -1.0]]))
    assert batch.input_ids.tolist() == [[5, 6, 7, 8, 9], [5, 6, 7, 0, 0]]
    assert batch.attention_mask.tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]
    # Targets are input_ids[:, 1:] = [6, 7, 8, 9]: the response starts at target index 1.
    assert batch.response_mask.tolist() == [[False, True, True, True], [False, True, False, False]]
    assert batch.rollout_logprobs[0].tolist() == pytest.approx([0.0, -0.1, -0.2, -0.3])
    assert batch.advantages.tolist() == [1.0, -1.0]
    halves = batch.split(2)
    assert [len(h) for h in halves] == [1, 1] and all(isinstance(h, TrainBatch) for h in halves)
    assert halves[1].advantages.tolist() == [-1.0] and halves[1].input_ids.tolist() == [
        [5, 6, 7, 0, 0]
    ]
    assert [len(c) for c in tokens.chunks(3)] == [1, 1]  # never an empty chunk
    with pytest.raises(ValueError, match=r"advantages: expected shape \[2\]"):
        TrainBatch.of(tokens, torch.tensor([1.0, -1.0, 0.5]))
    with pytest.raises(ValueError, match=r"ref_logprobs: expected shape \[2, 4\]"):
        TrainBatch.of(tokens, torch.tensor([1.0, -1.0]), ref_logprobs=torch.zeros(2, 5))
    with pytest.raises(dataclasses.FrozenInstanceError):
        batch.advantages = torch.zeros(2)


def test_rows_the_run_cannot_use_are_refused_before_training():
    from rlmr.data.prompts import check_prompt_rows

    rows = [PromptRow(id="a", prompt="short"), PromptRow(id="b", prompt="x " * 50, reference="ref")]
    check_prompt_rows(rows, "p.jsonl", lambda r: len(r.brief()), max_tokens=200)
    with pytest.raises(
        DataError, match=r"p.jsonl: id 'b': prompt is 100 tokens .* data.max_prompt_tokens is 50"
    ):
        check_prompt_rows(rows, "p.jsonl", lambda r: len(r.brief()), max_tokens=50)
    with pytest.raises(
        DataError, match=r"p.jsonl: id 'a': reference: required by .*group_strategy: reference"
    ):
        check_prompt_rows(
            rows, "p.jsonl", lambda r: len(r.brief()), max_tokens=200, need_reference=True
        )


def test_a_prompt_file_with_bytes_that_are_not_utf8_names_the_line(tmp_path):
    f = tmp_path / "p.jsonl"
    f.write_bytes(b'{"prompt": "fine"}\n{"prompt": "caf\xe9"}\n{"prompt": "also fine"}\n')
    with pytest.raises(DataError, match=r"p\.jsonl:2: not valid UTF-8 \(byte 0xe9 at column 16\)"):
        load_prompts(f)


def test_iter_jsonl_reports_every_kind_of_bad_line_and_keeps_reading(tmp_path):
    from rlmr.data.jsonl import iter_jsonl, read_jsonl

    f = tmp_path / "x.jsonl"
    f.write_bytes(b'{"a": 1}\n\n[1, 2]\n{"b": \n\xff{"c": 3}\n{"d": 4}\n')
    lines = list(iter_jsonl(f))
    assert [(x.number, x.row) for x in lines] == [
        (1, {"a": 1}),
        (3, None),
        (4, None),
        (5, None),
        (6, {"d": 4}),
    ]
    assert [x.problem.split(" (")[0] for x in lines if x.problem] == [
        "expected a JSON object, got list",
        "not valid JSON",
        "not valid UTF-8",
    ]
    repaired = [x for x in iter_jsonl(f, bad_utf8="replace") if x.repaired]
    assert [x.number for x in repaired] == [5] and repaired[
        0
    ].problem == "not valid JSON (Expecting value)"
    with pytest.raises(ValueError, match=r"x\.jsonl:3: expected a JSON object"):
        read_jsonl(f)

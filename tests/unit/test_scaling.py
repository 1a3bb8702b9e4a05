"""The scaling plan: nine layouts of cluster/scaling.yaml place, fit in 80 GB and match
cluster/SCALING.md.

No GPU, no Ray: `rlmr.config.placement.plan_placement` and `rlmr.config.memory` are pure.
When a table check fails, regenerate the tables with
`python -m rlmr.config.memory cluster/scaling.yaml` and paste them into SCALING.md.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from rlmr.config import ClusterConfig, LearnerConfig, load_config
from rlmr.config.memory import (
    GB,
    MODELS,
    activation_bytes,
    kv_bytes_per_token_per_gpu,
    learner_bytes_per_gpu,
    learner_host_bytes_per_rank,
    load_scenarios,
    memory_report,
    reference_bytes_per_gpu,
    vllm_kv_bytes_per_gpu,
    vllm_weight_bytes_per_gpu,
)
from rlmr.config.memory_tables import layout_table, memory_table
from rlmr.config.placement import plan_placement

REPO = Path(__file__).resolve().parents[2]
SCALING_YAML = REPO / "cluster" / "scaling.yaml"
SCALING_MD = REPO / "cluster" / "SCALING.md"
GPU_BYTES, SCENARIOS = load_scenarios(SCALING_YAML)
BY_NAME = {s.name: s for s in SCENARIOS}


# --------------------------------------------------------------------------- the arithmetic itself


def _learner(stage: int, **offload) -> LearnerConfig:
    return LearnerConfig(zero_stage=stage, **offload)


def test_learner_bytes_follow_the_zero_table():
    p, n = 1e9, 8
    assert learner_bytes_per_gpu(p, _learner(0), n) == 16 * p
    assert learner_bytes_per_gpu(p, _learner(1), n) == 2 * p + 2 * p + 12 * p / n
    assert learner_bytes_per_gpu(p, _learner(2), n) == 2 * p + (2 * p + 12 * p) / n
    assert learner_bytes_per_gpu(p, _learner(3), n) == 16 * p / n
    assert learner_bytes_per_gpu(p, _learner(3, offload_optimizer=True), n) == 4 * p / n
    assert (
        learner_bytes_per_gpu(p, _learner(3, offload_optimizer=True, offload_params=True), n)
        == 2 * p / n
    )
    assert learner_host_bytes_per_rank(p, _learner(3, offload_optimizer=True), n) == 16 * p / n
    assert learner_host_bytes_per_rank(p, _learner(3), n) == 0


def test_learner_bytes_reject_what_deepspeed_rejects():
    # The config section holds the one offload rule; the arithmetic takes only what it admits.
    with pytest.raises(ValidationError, match="offload_optimizer"):
        _learner(0, offload_optimizer=True)
    with pytest.raises(ValidationError, match="offload_params"):
        _learner(2, offload_params=True)
    with pytest.raises(ValueError, match="ranks"):
        learner_bytes_per_gpu(1e9, _learner(3), 0)


def test_figures_the_configs_and_the_document_quote():
    # configs/qwen2.5-7b-rlmr.yaml: 7.6B x 16 B / 2 ranks ~= 61 GB.
    assert learner_bytes_per_gpu(7.6e9, _learner(3), 2) / GB == pytest.approx(60.8)
    # configs/qwen2.5-32b-rlmr-4node.yaml: 32.8B x 4 B / 8 ranks ~= 16 GB; a reference would hold
    # a whole bf16 copy on each of its GPUs (65.6 GB), which is why that config runs KL off.
    assert learner_bytes_per_gpu(
        32.8e9, _learner(3, offload_optimizer=True), 8
    ) / GB == pytest.approx(16.4)
    assert reference_bytes_per_gpu(32.8e9) / GB == pytest.approx(65.6)
    # SCALING.md: 32B on 4 nodes needs 525 GB of host RAM on the learner's node.
    assert 8 * learner_host_bytes_per_rank(
        32.8e9, _learner(3, offload_optimizer=True), 8
    ) / GB == pytest.approx(524.8)
    # SCALING.md: per-token KV cost at TP1.
    kib = {name: kv_bytes_per_token_per_gpu(shape, 1) / 1024 for name, shape in MODELS.items()}
    assert kib == {"qwen2.5-7b": 56, "qwen2.5-32b": 256, "qwen2.5-72b": 320}
    assert vllm_weight_bytes_per_gpu(72.7e9, 4) / GB == pytest.approx(36.35)
    assert vllm_kv_bytes_per_gpu(80 * GB, 0.85, 15.2 * GB) / GB == pytest.approx(48.8)


def test_kv_heads_are_replicated_past_their_count():
    shape = MODELS["qwen2.5-7b"]  # 4 KV heads
    assert kv_bytes_per_token_per_gpu(shape, 8) == kv_bytes_per_token_per_gpu(shape, 4)
    assert kv_bytes_per_token_per_gpu(shape, 2) == 2 * kv_bytes_per_token_per_gpu(shape, 4)


def test_activations_grow_with_tokens_and_without_checkpointing():
    shape = MODELS["qwen2.5-7b"]
    # Linear in tokens, plus one fixed chunk of the entropy's fp32 temporaries.
    step = activation_bytes(shape, 2048) - activation_bytes(shape, 1024)
    assert activation_bytes(shape, 3072) - activation_bytes(shape, 2048) == pytest.approx(step)
    fixed = activation_bytes(shape, 1024) - step
    assert fixed == pytest.approx(12 * 1024 * shape.vocab)
    assert activation_bytes(shape, 2048, checkpointing=False) > activation_bytes(shape, 2048)


def test_layers_left_out_of_checkpointing_keep_their_activations():
    """`model.checkpoint_layers`: each layer left out of the recomputation swaps its bf16 input for
    its whole activations; the memory report follows the config."""
    shape, tokens = MODELS["qwen2.5-7b"], 2048
    full = activation_bytes(shape, tokens)
    assert activation_bytes(shape, tokens, recomputed=shape.layers) == full
    assert activation_bytes(shape, tokens, recomputed=shape.layers + 5) == full
    layer = 2 * (6 * shape.hidden + 4 * shape.intermediate) * tokens
    swap = layer - 2 * shape.hidden * tokens
    assert activation_bytes(shape, tokens, recomputed=shape.layers - 4) == pytest.approx(
        full + 4 * swap
    )
    kept = activation_bytes(shape, tokens, recomputed=0)
    assert kept == pytest.approx(activation_bytes(shape, tokens, checkpointing=False) + layer)

    s = SCENARIOS[0]
    on = s.cfg.model.model_copy(update={"gradient_checkpointing": True})
    cfg = s.cfg.model_copy(update={"model": on})
    every = memory_report(cfg, s.policy, s.judge, GPU_BYTES).learner_activations
    fewer_model = on.model_copy(update={"checkpoint_layers": s.policy.layers - 4})
    cfg = s.cfg.model_copy(update={"model": fewer_model})
    fewer = memory_report(cfg, s.policy, s.judge, GPU_BYTES).learner_activations
    seq = min(cfg.model.max_model_len, cfg.data.max_prompt_tokens + cfg.rollout.max_new_tokens)
    micro_batch_tokens = cfg.learner.micro_batch_size * seq
    assert fewer - every == pytest.approx(4 * swap / tokens * micro_batch_tokens)


# --------------------------------------------------------------------------- the nine layouts


def test_nine_scenarios_cover_three_models_on_1_4_32_nodes():
    assert GPU_BYTES == 80 * GB
    grid = {(s.policy.name, s.cfg.cluster.nodes) for s in SCENARIOS}
    assert grid == {
        (m, n) for m in ("Qwen2.5-7B", "Qwen2.5-32B", "Qwen2.5-72B") for n in (1, 4, 32)
    }
    for s in SCENARIOS:
        assert (
            s.name == f"{s.policy.name.removeprefix('Qwen2.5-').lower()}-{s.cfg.cluster.nodes}node"
        )
        assert s.cfg.cluster.gpus_per_node == 8


@pytest.mark.parametrize("name", list(BY_NAME))
def test_scenario_places_on_every_gpu(name):
    s = BY_NAME[name]
    cluster = ClusterConfig.model_validate(
        s.cfg.cluster.model_dump()
    )  # built afresh, as a run would
    plan = plan_placement(cluster)
    assert all(load <= 1.0 + 1e-9 for load in plan.gpu_load())
    used: dict[str, set[int]] = {}
    for role, reps in plan.replicas.items():
        for r in reps:
            if r.gpus_per_bundle:
                used.setdefault(role, set()).update(r.bundles)
    n_gpus = cluster.nodes * cluster.gpus_per_node
    assert set().union(*used.values()) == set(range(n_gpus)), "a GPU is left idle"
    # Roles with GPUs of their own take replicas x ceil(gpus) GPUs; engines span TP GPUs on one
    # node.
    for role in ("learner", "genrm", "rollout"):
        res = getattr(cluster, role)
        assert len(used[role]) == res.replicas * math.ceil(res.gpus)
    assert cluster.rollout.gpus == s.cfg.rollout.engine.tensor_parallel_size
    assert cluster.genrm.gpus == s.cfg.reward.writing.engine.tensor_parallel_size


@pytest.mark.parametrize("name", list(BY_NAME))
def test_scenario_fits_in_80_gb(name):
    s = BY_NAME[name]
    report = s.report(GPU_BYTES)
    assert report.problems() == []
    assert report.gpu_peak <= 80 * GB


@pytest.mark.parametrize("name", [s.name for s in SCENARIOS if s.config])
def test_scenarios_that_name_a_shipped_config_keep_its_layout(name):
    s = BY_NAME[name]
    shipped = load_config(REPO / s.config)
    assert s.cfg.cluster == shipped.cluster
    assert s.cfg.rollout.engine == shipped.rollout.engine
    assert s.cfg.reward.writing == shipped.reward.writing
    for key in ("zero_stage", "offload_optimizer", "offload_params"):
        assert getattr(s.cfg.learner, key) == getattr(shipped.learner, key), key


def _generated_block(text: str) -> str:
    m = re.search(
        r"<!-- scaling tables:[^\n]*-->\n(.*?)\n<!-- end of scaling tables -->", text, re.S
    )
    assert m, "SCALING.md lost its generated-table markers"
    return m.group(1).strip()


def test_scaling_md_tables_are_current():
    expected = layout_table(SCENARIOS) + "\n\n" + memory_table(SCENARIOS, GPU_BYTES)
    actual = _generated_block(SCALING_MD.read_text(encoding="utf-8"))
    assert actual == expected, (
        "cluster/SCALING.md is stale; replace its tables with the output of "
        "`python -m rlmr.config.memory cluster/scaling.yaml`:\n" + expected
    )


def test_every_scenario_is_explained_in_the_document():
    text = SCALING_MD.read_text(encoding="utf-8")
    for s in SCENARIOS:
        model, nodes = s.policy.name.removeprefix("Qwen2.5-"), s.cfg.cluster.nodes
        assert re.search(rf"\*\*{model}, [^*]*\b{nodes}\b[^*]*nodes?\*\*", text), s.name


# ------------------------------------------------------------------------ the shipped GPU configs


@pytest.mark.parametrize(
    "config, model",
    [
        pytest.param("configs/qwen2.5-32b-rlmr-4node.yaml", "qwen2.5-32b", id="32b-4node"),
        pytest.param("configs/qwen2.5-7b-rlmr.yaml", "qwen2.5-7b", id="7b-1node"),
    ],
)
def test_shipped_gpu_configs_fit(config, model):
    report = memory_report(load_config(REPO / config), MODELS[model], gpu_bytes=80 * GB)
    assert report.problems() == []


def test_a_colocated_learner_gpu_holds_the_reference_too():
    """`cluster.colocate`: the reference model loads in the learner rank's process, so the
    learner's GPU holds its weights beside the learner's states (no bundle of its own)."""
    text = (
        "model: {source: {type: tiny}}\ndata: {train: x.jsonl}\n"
        "rollout: {engine: {type: hf, device: cuda}}\n"
        "reward: {strategy: verifier_only, writing: {type: none}}\n"
        "algo: {kl: {beta: 0.02}}\n"
        "cluster: {gpus_per_node: 1, colocate: COLOCATE, learner: {gpus: 1}, "
        "rollout: {gpus: GPUS}, reference: {gpus: GPUS}, genrm: {replicas: 0}}\n"
    )
    import yaml

    from rlmr.config import validate_config

    def report(colocate: bool, gpus: float):
        raw = yaml.safe_load(
            text.replace("COLOCATE", str(colocate).lower()).replace("GPUS", str(gpus))
        )
        return memory_report(
            validate_config(raw, "c.yaml"), MODELS["qwen2.5-7b"], gpu_bytes=80 * GB
        )

    together, learner_only = report(True, 0), report(False, 0)
    ref = reference_bytes_per_gpu(MODELS["qwen2.5-7b"].params)
    assert together.reference == learner_only.reference == ref
    assert together.learner_gpu_peak[0] == pytest.approx(learner_only.learner_gpu_peak[0] + ref)

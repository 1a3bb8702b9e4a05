"""The typed config: every shipped file validates; errors name the file and the dotted key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from rlmr.config import ConfigError, RLMRConfig, load_config, save_resolved, to_dict

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted((REPO / "configs").glob("**/*.yaml"))


def test_configs_exist():
    names = {p.name for p in CONFIGS}
    assert {
        "tiny.yaml",
        "smollm2-cpu.yaml",
        "qwen2.5-7b-rlmr.yaml",
        "qwen2.5-32b-rlmr-4node.yaml",
    } <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_validates(path):
    cfg = load_config(path)
    assert isinstance(cfg, RLMRConfig)


def _write(tmp_path, text) -> Path:
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


MINIMAL = "model: {source: {type: tiny}}\ndata: {train: x.jsonl}\n"


def test_minimal_config_fills_defaults(tmp_path):
    cfg = load_config(_write(tmp_path, MINIMAL))
    assert cfg.algo.clip.high == 0.28 and cfg.algo.clip.low == 0.2
    assert cfg.reward.strategy == "dynamic"
    assert not cfg.uses_reference


def test_unknown_key_names_file_and_dotted_key(tmp_path):
    p = _write(tmp_path, MINIMAL + "algo: {clip: {hihg: 0.3}}\n")
    with pytest.raises(ConfigError) as err:
        load_config(p)
    assert f"{p}: algo.clip.hihg: unknown key" in str(err.value)


def test_unknown_key_inside_a_union_variant_drops_the_tag(tmp_path):
    p = _write(
        tmp_path,
        MINIMAL
        + "rollout: {engine: {type: vllm, tensor_parallel: 2}}\ncluster: {gpus_per_node: 8}\n",
    )
    with pytest.raises(ConfigError) as err:
        load_config(p)
    assert "rollout.engine.tensor_parallel: unknown key" in str(err.value)


def test_bounds_are_enforced_with_the_offending_value(tmp_path):
    p = _write(tmp_path, MINIMAL + "rollout: {n: 1}\n")
    with pytest.raises(ConfigError) as err:
        load_config(p)
    assert "rollout.n: Input should be greater than or equal to 2 (got 1)" in str(err.value)


def test_missing_section_is_reported(tmp_path):
    p = _write(tmp_path, "model: {source: {type: tiny}}\n")
    with pytest.raises(ConfigError, match="data: required key is missing"):
        load_config(p)


def test_bad_discriminator(tmp_path):
    p = _write(tmp_path, "model: {source: {type: hub, name: x}}\ndata: {train: x}\n")
    with pytest.raises(ConfigError, match="model.source: .*'hub'.*'local', 'package', 'tiny'"):
        load_config(p)


def test_cross_field_errors_name_full_keys(tmp_path):
    with pytest.raises(ConfigError, match="rollout.engine.type: vllm needs GPUs"):
        load_config(_write(tmp_path, MINIMAL + "rollout: {engine: {type: vllm}}\n"))
    with pytest.raises(ConfigError, match=r"cluster\.learner\.gpus: is set but gpus_per_node is 0"):
        load_config(_write(tmp_path, MINIMAL + "cluster: {learner: {gpus: 1}}\n"))
    with pytest.raises(
        ConfigError, match=r"cluster\.rollout: no node has 2 free GPU\(s\) left for replica 2"
    ):
        load_config(
            _write(
                tmp_path,
                MINIMAL
                + (
                    "cluster: {gpus_per_node: 8, rollout: {replicas: 4, gpus: 2}, "
                    "learner: {replicas: 4, gpus: 1}}\n"
                ),
            )
        )
    with pytest.raises(ConfigError, match=r"algo\.kl\.estimator: must be k1"):
        load_config(
            _write(tmp_path, MINIMAL + "algo: {kl: {beta: 0.1, in_loss: false, estimator: k3}}\n")
        )
    with pytest.raises(ConfigError, match=r"model\.source\.hidden_size: 65 is not divisible"):
        load_config(
            _write(
                tmp_path,
                "model: {source: {type: tiny, hidden_size: 65, num_heads: 4}}\ndata: {train: x}\n",
            )
        )


COLOCATED = MINIMAL + (
    "algo: {kl: {beta: 0.02}}\n"
    "cluster: {colocate: true, rollout: {replicas: 1}, reference: {replicas: 1}, "
    "learner: {replicas: 1}}\n"
)


def test_colocation_runs_rollout_reference_and_verifier_in_the_one_learner_rank(tmp_path):
    """`cluster.colocate`: accepted for one learner rank with an HF engine; the rollout, the
    reference and the verifier take no placement of their own (they run in the learner's
    actor)."""
    from rlmr.config.placement import plan_placement

    cfg = load_config(_write(tmp_path, COLOCATED))
    assert cfg.cluster.colocate and cfg.uses_reference
    plan = plan_placement(cfg.cluster)
    assert set(plan.replicas) == {"learner", "genrm"}
    assert len(plan.bundles) == 2
    apart = plan_placement(
        load_config(_write(tmp_path, COLOCATED.replace("true", "false"))).cluster
    )
    assert set(apart.replicas) == {"learner", "genrm", "verifier", "rollout", "reference"}


@pytest.mark.parametrize(
    "override, message",
    [
        ("cluster.learner.replicas=2", r"cluster\.learner\.replicas: 2, but colocate: true"),
        ("cluster.rollout.replicas=2", r"cluster\.rollout\.replicas: 2, but colocate: true"),
        ("cluster.reference.replicas=2", r"cluster\.reference\.replicas: 2, but colocate: true"),
        ("cluster.verifier.replicas=2", r"cluster\.verifier\.replicas: 2, but colocate: true"),
        ("learner.zero_stage=3", r"learner\.zero_stage: 3 partitions the weights"),
        ("rollout.max_staleness=1", r"rollout\.max_staleness: 1, but a colocated engine"),
        (
            "rollout.engine={type: vllm}",
            r"cluster\.colocate: true needs an HF rollout engine \(rollout\.engine\.type is vllm",
        ),
    ],
)
def test_colocation_refuses_what_one_process_cannot_hold(tmp_path, override, message):
    extra = [override, "algo.behaviour_weight_cap=2.0"]
    if "vllm" in override:
        extra.append(
            "cluster={gpus_per_node: 1, colocate: true, learner: {gpus: 1}, rollout: {gpus: 0}, "
            "genrm: {gpus: 0}, reference: {gpus: 0}}"
        )
    with pytest.raises(ConfigError, match=message):
        load_config(_write(tmp_path, COLOCATED), extra)


def test_dotted_overrides(tmp_path):
    p = _write(tmp_path, MINIMAL)
    cfg = load_config(
        p,
        [
            "algo.clip.high=0.3",
            "reward.strategy=writing_only",
            "rollout.engine={type: hf, batch_size: 2}",
        ],
    )
    assert cfg.algo.clip.high == 0.3
    assert cfg.reward.strategy == "writing_only"
    assert cfg.rollout.engine.batch_size == 2


def test_override_errors_say_they_come_from_set(tmp_path):
    p = _write(tmp_path, MINIMAL)
    with pytest.raises(ConfigError, match=r"--set algo.clip.hgh: algo.clip.hgh: unknown key"):
        load_config(p, ["algo.clip.hgh=0.3"])
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        load_config(p, ["algo.clip.high"])
    with pytest.raises(ConfigError, match="is a value, not a section"):
        load_config(p, ["data.train.x=1"])


def test_config_is_frozen(tmp_path):
    cfg = load_config(_write(tmp_path, MINIMAL))
    with pytest.raises(ValidationError, match="frozen"):
        cfg.algo.clip.high = 0.5


def test_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(_write(tmp_path, "model: [unclosed\n"))
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(_write(tmp_path, "- a\n- b\n"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_resolved_config_round_trips(path, tmp_path):
    cfg = load_config(path)
    out = save_resolved(cfg, tmp_path / "run" / "config.yaml")
    again = load_config(out)
    assert again == cfg
    assert to_dict(again) == yaml.safe_load(out.read_text())


def test_prompt_and_response_budget_must_fit_the_model(tmp_path):
    with pytest.raises(
        ConfigError, match=r"data.max_prompt_tokens: 512 \+ rollout.max_new_tokens 1024 exceed"
    ):
        load_config(
            _write(
                tmp_path,
                MINIMAL
                + (
                    "rollout: {max_new_tokens: 1024}\n"
                    "model: {source: {type: tiny}, max_model_len: 1024}\n"
                ),
            )
        )

"""Every config field has an effect that some test observes: the map, its checks, the missing tests.

`leaf_fields()` walks `RLMRConfig` (discriminated unions as `section[variant].field`, the
shared `RoleResources` once per cluster role). `OBSERVED_BY` maps each leaf to the tests that
would fail if the field were ignored. The meta-tests keep it honest: a new field without an
entry fails (give it a test or remove it), and so does an entry naming a test that does not
exist (files are parsed with `ast`, never imported).

A test counts when its assertions change with the field's value: a driver run over
`tests.fake_services.FakeServices`, an engine, learner, planner or run-directory check, or a
refusal for a field whose only job is validation. Where the field is handed unchanged to a
function inside a Ray actor (`actors/`), the test of that function counts, and the integration
test of the actor is listed too. The tests after the map are the ones that were missing; they
run on CPU in-process (DeepSpeed and vLLM are replaced by recording fakes).
"""

from __future__ import annotations

import ast
import importlib.machinery
import json
import math
import re
import sys
import types
import typing
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from pydantic import BaseModel

from rlmr.config import (
    AlgoConfig,
    GenRMReward,
    LearnerConfig,
    LocalModel,
    RLMRConfig,
    TinyModel,
)
from rlmr.config.placement import plan_placement
from rlmr.core.algo import LossSettings, group_advantages
from rlmr.core.records import (
    Group,
    PromptRow,
    Response,
    RewardSignals,
    ScoredGroup,
    TokenBatch,
    TrainBatch,
)
from rlmr.core.rewards import mix_rewards
from rlmr.data.prompts import PromptSampler
from rlmr.engine.base import SamplingParams
from rlmr.training.driver import run_training
from rlmr.training.run_dir import RunDir, RunDirError
from tests.fake_services import FakeServices, fake_run_config
from tests.fakes import (
    FakeEngine,
    FakeSamplingParams,
    FakeVLLM,
    preferring,
    tiny_cache,  # noqa: F401 (fixture)
)

REPO = Path(__file__).resolve().parents[2]

# --------------------------------------------------------------------------- the leaf fields


def _variants(annotation) -> list:
    """The alternatives of a (possibly Annotated, possibly optional) union; one item otherwise."""
    if typing.get_origin(annotation) is typing.Annotated:
        return _variants(typing.get_args(annotation)[0])
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [v for arg in typing.get_args(annotation) for v in _variants(arg)]
    return [annotation]


def leaf_fields(model: type[BaseModel] = RLMRConfig, prefix: str = "") -> list[str]:
    """Dotted paths of every leaf field; union variants are named by their `type` tag."""
    out = []
    for name, field in model.model_fields.items():
        options = _variants(field.annotation)
        sections = [v for v in options if isinstance(v, type) and issubclass(v, BaseModel)]
        if not sections:
            out.append(prefix + name)
        elif len(options) == 1:
            out += leaf_fields(sections[0], f"{prefix}{name}.")
        else:
            for variant in sections:
                tag = variant.model_fields["type"].default
                out += leaf_fields(variant, f"{prefix}{name}[{tag}].")
    return out


# --------------------------------------------------------------------------- the map

ME = "tests/unit/test_config_fields.py::"
DRIVER = "tests/unit/test_driver.py::"
CONFIG = "tests/unit/test_config.py::"
JT = "tests/unit/test_judge_training.py::"
PLACEMENT = "tests/unit/test_placement.py::"
LOADING = "tests/unit/test_engine_loading.py::"
ALGO = "tests/unit/test_algo.py::"
REWARDS = "tests/unit/test_rewards_properties.py::"
NONFINITE = "tests/unit/test_nonfinite.py::"
FAULTS = "tests/integration/test_faults.py::"
EVALS = "tests/unit/test_eval_in_training.py::"
STRATEGIES = "tests/unit/test_judge_strategies.py::"
VLLM = "tests/unit/test_engine_vllm.py::"
GENRM_WORKER = "tests/integration/test_genrm_worker.py::test_genrm_worker_scores_groups"
VERIFIER_WORKER = "tests/integration/test_verifier_worker.py::"
PIPELINE = "tests/unit/test_pipeline.py::"
LEARNER = "tests/unit/test_learner.py::"

_SOURCE_TESTS = {  # the fields of a model source, by variant; shared by the policy and the judge
    "local": {
        "type": [ME + "test_local_source_reaches_vllm", LOADING + "test_bad_sources_fail_clearly"],
        "path": [ME + "test_local_source_reaches_vllm", LOADING + "test_bad_sources_fail_clearly"],
        "tokenizer": [ME + "test_local_source_reaches_vllm"],
    },
    "package": {
        "type": [ME + "test_package_source_is_looked_up_by_package_and_file"],
        "package": [
            ME + "test_package_source_is_looked_up_by_package_and_file",
            LOADING + "test_package_model_is_found_without_importing_the_package",
        ],
        "file": [
            ME + "test_package_source_is_looked_up_by_package_and_file",
            LOADING + "test_package_model_is_found_without_importing_the_package",
        ],
    },
    "tiny": {
        "type": [ME + "test_tiny_source_fields_shape_the_model"],
        "vocab_size": [ME + "test_tiny_source_fields_shape_the_model"],
        "hidden_size": [
            ME + "test_tiny_source_fields_shape_the_model",
            CONFIG + "test_cross_field_errors_name_full_keys",
        ],
        "intermediate_size": [ME + "test_tiny_source_fields_shape_the_model"],
        "num_layers": [ME + "test_tiny_source_fields_shape_the_model"],
        "num_heads": [
            ME + "test_tiny_source_fields_shape_the_model",
            CONFIG + "test_cross_field_errors_name_full_keys",
        ],
        "max_position_embeddings": [ME + "test_tiny_source_fields_shape_the_model"],
        "seed": [LOADING + "test_tiny_model_is_deterministic_across_caches"],
    },
}

_ROLE_TESTS = {  # cluster.<role>.replicas / gpus (cpus: one test for every role)
    "rollout": {
        "replicas": [
            PLACEMENT + "test_gpu_nodes",
            PLACEMENT + "test_too_big_replica_names_the_role",
        ],
        "gpus": [
            PLACEMENT + "test_gpu_nodes",
            PLACEMENT + "test_tensor_parallel_replica_never_straddles_nodes",
        ],
    },
    "genrm": {
        "replicas": [
            PLACEMENT + "test_gpu_nodes",
            PLACEMENT + "test_fractional_replicas_of_different_roles_share_a_gpu",
        ],
        "gpus": [PLACEMENT + "test_fractional_replicas_of_different_roles_share_a_gpu"],
    },
    "reference": {
        "replicas": [
            PLACEMENT + "test_gpu_nodes",
            PLACEMENT + "test_fractional_replicas_of_different_roles_share_a_gpu",
        ],
        "gpus": [PLACEMENT + "test_fractional_replicas_of_different_roles_share_a_gpu"],
    },
    "learner": {
        "replicas": [
            PLACEMENT + "test_gpu_nodes",
            PLACEMENT + "test_tensor_parallel_replica_never_straddles_nodes",
        ],
        "gpus": [PLACEMENT + "test_gpu_nodes", CONFIG + "test_cross_field_errors_name_full_keys"],
    },
    "verifier": {
        "replicas": [PLACEMENT + "test_gpu_nodes"],
    },
}


def _source_entries(prefix: str, extra: list[str]) -> dict[str, list[str]]:
    return {
        f"{prefix}[{variant}].{name}": tests + extra
        for variant, fields in _SOURCE_TESTS.items()
        for name, tests in fields.items()
    }


def _role_entries() -> dict[str, list[str]]:
    out = {}
    for role, fields in _ROLE_TESTS.items():
        for name, tests in fields.items():
            out[f"cluster.{role}.{name}"] = tests
        out[f"cluster.{role}.cpus"] = [ME + "test_placement_gives_every_replica_its_cpus"]
    return out


_ENGINE_TESTS = {  # an engine section's fields, by variant; the rollout's and the judge's
    "hf": {
        "type": [ME + "test_hf_engine_section_sets_batching_dtype_and_length"],
        "device": [ME + "test_hf_engine_device_reaches_the_loader"],
        "batch_size": [ME + "test_hf_engine_section_sets_batching_dtype_and_length"],
        "linear_kernel": [
            ME + "test_hf_engine_linear_kernel_reaches_the_engine",
            "tests/unit/test_cpu_linear.py::"
            "test_the_engine_on_the_packed_kernel_samples_and_syncs_as_on_the_default",
        ],
        "decode_loop": [
            ME + "test_hf_engine_decode_loop_reaches_the_engine",
            "tests/unit/test_engine_hf.py::test_the_own_loop_decodes_what_generate_decodes",
        ],
    },
    "vllm": {
        name: [ME + "test_vllm_engine_section_reaches_vllm"]
        for name in (
            "type",
            "tensor_parallel_size",
            "gpu_memory_utilization",
            "enable_prefix_caching",
            "enforce_eager",
            "max_num_seqs",
            "max_logprobs",
            "seed_per_request",
        )
    },
}


def _engine_entries(prefix: str, extra: dict[str, list[str]]) -> dict[str, list[str]]:
    return {
        f"{prefix}[{variant}].{name}": tests + extra.get(f"{variant}.{name}", [])
        for variant, fields in _ENGINE_TESTS.items()
        for name, tests in fields.items()
    }


OBSERVED_BY: dict[str, list[str]] = {
    # ----- model
    **_source_entries("model.source", []),
    "model.dtype": [
        ME + "test_hf_engine_section_sets_batching_dtype_and_length",
        ME + "test_learner_follows_backend_dtype_checkpointing_and_loss_settings",
        ME + "test_vllm_engine_section_reaches_vllm",
    ],
    "model.max_model_len": [
        ME + "test_hf_engine_section_sets_batching_dtype_and_length",
        ME + "test_vllm_engine_section_reaches_vllm",
        CONFIG + "test_prompt_and_response_budget_must_fit_the_model",
    ],
    "model.chat_template": [ME + "test_prompt_sets_follow_the_data_section_and_chat_template"],
    "model.gradient_checkpointing": [
        ME + "test_learner_follows_backend_dtype_checkpointing_and_loss_settings"
    ],
    "model.checkpoint_layers": [
        ME + "test_learner_recomputes_only_the_first_checkpoint_layers",
        "tests/unit/test_recompute.py::test_only_the_first_layers_recompute_with_the_same_numbers",
        "tests/unit/test_recompute.py::test_checkpoint_layers_needs_checkpointing_and_the_layers",
        "tests/unit/test_scaling.py::test_layers_left_out_of_checkpointing_keep_their_activations",
    ],
    # ----- data
    "data.train": [ME + "test_prompt_sets_follow_the_data_section_and_chat_template"],
    "data.eval": [
        ME + "test_prompt_sets_follow_the_data_section_and_chat_template",
        ME + "test_eval_every_needs_held_out_prompts",
    ],
    "data.shuffle": [
        ME + "test_data_order_follows_data_seed_and_shuffle",
        DRIVER + "test_dynamic_sampling_replaces_zero_variance_groups",
    ],
    "data.seed": [
        ME + "test_data_order_follows_data_seed_and_shuffle",
        "tests/unit/test_data.py::test_sampler_is_seeded_resumable_and_covers_every_row",
    ],
    "data.max_prompt_tokens": [
        ME + "test_prompt_sets_follow_the_data_section_and_chat_template",
        CONFIG + "test_prompt_and_response_budget_must_fit_the_model",
    ],
    "data.eval_size": [ME + "test_eval_follows_eval_size_and_eval_at_start"],
    # ----- rollout
    "rollout.n": [ME + "test_sampling_follows_the_rollout_and_trainer_sections"],
    "rollout.prompts_per_step": [
        DRIVER + "test_dynamic_sampling_replaces_zero_variance_groups",
        DRIVER + "test_without_dynamic_sampling_flat_groups_are_kept_and_counted",
    ],
    "rollout.max_new_tokens": [
        ME + "test_sampling_follows_the_rollout_and_trainer_sections",
        CONFIG + "test_prompt_and_response_budget_must_fit_the_model",
    ],
    "rollout.temperature": [ME + "test_sampling_follows_the_rollout_and_trainer_sections"],
    "rollout.top_p": [
        ME + "test_sampling_follows_the_rollout_and_trainer_sections",
        VLLM + "test_generate_maps_sampling_params_and_reads_sampled_logprobs",
    ],
    "rollout.top_k": [
        ME + "test_sampling_follows_the_rollout_and_trainer_sections",
        VLLM + "test_generate_maps_sampling_params_and_reads_sampled_logprobs",
    ],
    "rollout.dynamic_sampling": [
        DRIVER + "test_dynamic_sampling_replaces_zero_variance_groups",
        DRIVER + "test_without_dynamic_sampling_flat_groups_are_kept_and_counted",
    ],
    "rollout.max_refill_rounds": [DRIVER + "test_dynamic_sampling_replaces_zero_variance_groups"],
    "rollout.max_staleness": [
        PIPELINE + "test_rollout_of_the_next_step_runs_while_the_learner_trains",
        PIPELINE + "test_asynchronous_rollout_needs_the_correction_and_a_policy",
    ],
    **_engine_entries("rollout.engine", {}),
    # ----- reward
    "reward.strategy": [
        ME + "test_rewards_and_advantages_follow_the_reward_and_algo_sections",
        REWARDS + "test_baseline_strategies",
    ],
    "reward.all_violate": [
        ME + "test_rewards_and_advantages_follow_the_reward_and_algo_sections",
        REWARDS + "test_all_violate_writing_ranks_by_writing",
        REWARDS + "test_all_violate_fraction_ranks_by_constraints_met",
    ],
    "reward.fixed_weight": [
        ME + "test_rewards_and_advantages_follow_the_reward_and_algo_sections",
        REWARDS + "test_baseline_strategies",
    ],
    "reward.truncated_penalty": [
        NONFINITE + "test_cut_and_empty_responses_are_counted_and_the_cut_ones_penalised"
    ],
    "reward.margin": [
        ME + "test_rewards_and_advantages_follow_the_reward_and_algo_sections",
        REWARDS + "test_dynamic_penalty_is_the_smallest_that_works_plus_margin",
    ],
    "reward.writing[genrm].type": [ME + "test_the_judge_is_asked_only_with_a_writing_reward"],
    # the judge's own weights: the same loader, reached through `writing.model or model.source`
    **_source_entries(
        "reward.writing[genrm].model",
        [ME + "test_judge_cli_builds_the_judge_from_the_writing_section"],
    ),
    "reward.writing[genrm].dtype": [
        ME + "test_hf_engine_section_sets_batching_dtype_and_length",
        ME + "test_vllm_engine_section_reaches_vllm",
    ],
    **_engine_entries(
        "reward.writing[genrm].engine",
        {"hf.type": [GENRM_WORKER], "hf.device": [GENRM_WORKER]},
    ),
    "reward.writing[genrm].group_strategy": [
        ME + "test_judge_settings_follow_the_writing_section",
        ME + "test_prompt_sets_follow_the_data_section_and_chat_template",
        GENRM_WORKER,
    ],
    "reward.writing[genrm].reasoning": [
        ME + "test_judge_settings_follow_the_writing_section",
        STRATEGIES
        + "test_reasoning_samples_all_analyses_in_one_generate_call_and_reads_after_them",
    ],
    "reward.writing[genrm].swap": [
        ME + "test_judge_settings_follow_the_writing_section",
        STRATEGIES + "test_swap_cancels_a_judge_that_always_picks_the_first_response",
        GENRM_WORKER,
    ],
    "reward.writing[genrm].max_analysis_tokens": [
        ME + "test_judge_settings_follow_the_writing_section"
    ],
    "reward.writing[genrm].max_judge_len": [
        ME + "test_judge_settings_follow_the_writing_section",
        ME + "test_vllm_engine_section_reaches_vllm",
        GENRM_WORKER,
    ],
    "reward.writing[genrm].temperature": [ME + "test_judge_settings_follow_the_writing_section"],
    "reward.writing[none].type": [ME + "test_the_judge_is_asked_only_with_a_writing_reward"],
    "reward.verifier.soft_constraints": [
        VERIFIER_WORKER + "test_engine_mode_without_an_engine_fails_clearly",
        ME + "test_soft_constraints_engine_needs_a_writing_judge",
    ],
    "reward.verifier.judge_directed_text": [
        "tests/unit/test_verify_creative.py::test_guard_is_always_applied_unless_turned_off_or_listed",
    ],
    "reward.verifier.loose": [
        "tests/unit/test_verify_api.py::test_loose_applies_to_ifeval_types_only"
    ],
    # ----- algo
    "algo.advantage": [
        ME + "test_rewards_and_advantages_follow_the_reward_and_algo_sections",
        ALGO + "test_dr_grpo_and_rloo_match_definitions",
    ],
    "algo.eps": [
        ME + "test_rewards_and_advantages_follow_the_reward_and_algo_sections",
        ALGO + "test_group_norm_matches_definition",
    ],
    "algo.clip.low": [
        ME + "test_learner_follows_backend_dtype_checkpointing_and_loss_settings",
        ALGO + "test_clip_higher_is_asymmetric",
    ],
    "algo.clip.high": [
        ME + "test_learner_follows_backend_dtype_checkpointing_and_loss_settings",
        ALGO + "test_clip_higher_is_asymmetric",
    ],
    "algo.clip.dual": [
        ME + "test_learner_follows_backend_dtype_checkpointing_and_loss_settings",
        ALGO + "test_dual_clip_bounds_negative_advantage_loss",
    ],
    "algo.kl.beta": [
        ME + "test_reference_and_kl_follow_beta_in_loss_and_clamp",
        DRIVER + "test_kl_in_reward_is_subtracted_from_the_writing_score_before_mixing",
        ME + "test_learner_follows_backend_dtype_checkpointing_and_loss_settings",
        ALGO + "test_kl_in_loss_adds_beta_times_estimator",
    ],
    "algo.kl.estimator": [
        ME + "test_learner_follows_backend_dtype_checkpointing_and_loss_settings",
        ALGO + "test_kl_estimators_match_definitions",
        CONFIG + "test_cross_field_errors_name_full_keys",
    ],
    "algo.kl.in_loss": [
        ME + "test_reference_and_kl_follow_beta_in_loss_and_clamp",
        DRIVER + "test_kl_in_reward_is_subtracted_from_the_writing_score_before_mixing",
        ME + "test_learner_follows_backend_dtype_checkpointing_and_loss_settings",
    ],
    "algo.kl.reference_micro_batch": [
        "tests/unit/test_file_weights.py::"
        "test_the_reference_role_reads_its_weights_from_a_file_and_hands_them_back",
    ],
    "algo.kl.reference_in_file": [
        "tests/unit/test_file_weights.py::"
        "test_the_reference_role_reads_its_weights_from_a_file_and_hands_them_back",
    ],
    "algo.loss_aggregation": [
        ME + "test_learner_follows_backend_dtype_checkpointing_and_loss_settings",
        ALGO + "test_seq_mean_token_mean_averages_per_sequence_first",
    ],
    "algo.behaviour_weight_cap": [
        LEARNER + "test_the_behaviour_weight_corrects_each_token_toward_the_rollout_policy",
        PIPELINE + "test_asynchronous_rollout_needs_the_correction_and_a_policy",
    ],
    "algo.log_ratio_clamp": [
        ME + "test_reference_and_kl_follow_beta_in_loss_and_clamp",
        ME + "test_learner_follows_backend_dtype_checkpointing_and_loss_settings",
        ALGO + "test_kl_clamps_extreme_log_ratios_to_finite_values",
    ],
    # ----- learner
    "learner.zero_stage": [ME + "test_deepspeed_config_follows_the_learner_section"],
    "learner.lr": [ME + "test_learner_optimizer_follows_lr_weight_decay_betas_and_warmup"],
    "learner.weight_decay": [
        ME + "test_learner_optimizer_follows_lr_weight_decay_betas_and_warmup"
    ],
    "learner.betas": [ME + "test_learner_optimizer_follows_lr_weight_decay_betas_and_warmup"],
    "learner.warmup_steps": [
        ME + "test_learner_optimizer_follows_lr_weight_decay_betas_and_warmup"
    ],
    "learner.grad_clip": [ME + "test_deepspeed_config_follows_the_learner_section"],
    "learner.micro_batch_size": [
        ME + "test_learner_batches_follow_micro_batch_size_and_updates_per_step"
    ],
    "learner.updates_per_step": [
        ME + "test_learner_batches_follow_micro_batch_size_and_updates_per_step"
    ],
    "learner.backend": [ME + "test_learner_follows_backend_dtype_checkpointing_and_loss_settings"],
    "learner.offload_optimizer": [ME + "test_deepspeed_config_follows_the_learner_section"],
    "learner.offload_params": [ME + "test_deepspeed_config_follows_the_learner_section"],
    # ----- cluster
    "cluster.nodes": [PLACEMENT + "test_gpu_nodes"],
    "cluster.colocate": [
        CONFIG + "test_colocation_runs_rollout_reference_and_verifier_in_the_one_learner_rank",
        "tests/integration/test_weight_sync.py::"
        "test_a_colocated_engine_generates_with_the_learners_weights_without_a_sync",
        "tests/integration/test_train_tiny.py::test_a_colocated_run_learns_with_four_roles_in_one_process",
    ],
    "cluster.startup_timeout_s": [
        "tests/integration/test_actor_startup.py::"
        "test_actor_startup_is_bounded_and_names_what_did_not_start"
    ],
    "cluster.gpus_per_node": [
        PLACEMENT + "test_gpu_nodes",
        CONFIG + "test_cross_field_errors_name_full_keys",
    ],
    **_role_entries(),
    # ----- logging
    "logging.output_dir": [
        ME + "test_run_dir_follows_output_dir_run_name_and_keep_last",
        DRIVER + "test_object_store_output_dir_resumes_from_the_uri_alone",
    ],
    "logging.run_name": [ME + "test_run_dir_follows_output_dir_run_name_and_keep_last"],
    "logging.samples_per_step": [ME + "test_samples_per_step_sets_the_samples_written"],
    "logging.tensorboard": [ME + "test_tensorboard_and_progress_bar_follow_the_logging_section"],
    "logging.wandb.enabled": [ME + "test_wandb_follows_the_logging_section"],
    "logging.wandb.project": [ME + "test_wandb_follows_the_logging_section"],
    "logging.wandb.entity": [ME + "test_wandb_follows_the_logging_section"],
    "logging.progress_bar": [ME + "test_tensorboard_and_progress_bar_follow_the_logging_section"],
    # ----- checkpoint
    "checkpoint.every": [
        DRIVER + "test_steps_write_metrics_samples_checkpoints_and_curves",
        DRIVER + "test_wall_clock_budget_stops_early_with_eval_and_checkpoint",
    ],
    "checkpoint.keep_last": [ME + "test_run_dir_follows_output_dir_run_name_and_keep_last"],
    "checkpoint.save_optimizer": [ME + "test_learner_saves_optimizer_state_only_when_asked"],
    # ----- trainer
    "trainer.steps": [
        DRIVER + "test_steps_write_metrics_samples_checkpoints_and_curves",
        DRIVER + "test_resume_continues_with_the_same_data_order",
    ],
    "trainer.seed": [ME + "test_sampling_follows_the_rollout_and_trainer_sections"],
    "trainer.eval_every": [
        DRIVER + "test_steps_write_metrics_samples_checkpoints_and_curves",
        ME + "test_eval_every_needs_held_out_prompts",
    ],
    "trainer.eval_at_start": [ME + "test_eval_follows_eval_size_and_eval_at_start"],
    "trainer.eval_samples_per_prompt": [
        ME + "test_sampling_follows_the_rollout_and_trainer_sections"
    ],
    "trainer.max_wall_minutes": [
        DRIVER + "test_wall_clock_budget_stops_early_with_eval_and_checkpoint"
    ],
    "cluster.actor_restarts": [FAULTS + "test_a_replica_that_keeps_dying_stops_the_run_naming_it"],
    "cluster.call_timeout_s": [
        FAULTS + "test_killed_and_hung_replicas_are_restarted_and_the_run_is_the_uninterrupted_one"
    ],
    "trainer.max_skipped_steps": [
        NONFINITE + "test_steps_skipped_in_a_row_stop_the_run_with_their_samples_saved",
        NONFINITE + "test_a_run_whose_every_step_is_skipped_stops_at_the_limit",
    ],
    "trainer.eval_temperature": [ME + "test_sampling_follows_the_rollout_and_trainer_sections"],
    "trainer.eval.suites": [
        EVALS + "test_the_suites_run_at_each_evaluation_on_the_run_engines",
        EVALS + "test_suites_alone_are_something_to_evaluate",
    ],
    "trainer.eval.limit": [EVALS + "test_suites_alone_are_something_to_evaluate"],
    "trainer.eval.max_new_tokens": [
        EVALS + "test_the_suites_run_at_each_evaluation_on_the_run_engines"
    ],
    # ----- task and judge training
    "task": [
        JT + "test_judge_grpo_rewards_agreement_shaped_by_the_verdict_entropy",
        JT + "test_sft_takes_its_rows_and_epochs_from_the_judge_section",
    ],
    "judge.reasoning": [
        JT + "test_a_judgment_may_write_an_analysis_only_with_reasoning",
        JT + "test_the_judge_section_shapes_the_prompts_the_policy_sees",
    ],
    "judge.max_analysis_tokens": [JT + "test_a_judgment_may_write_an_analysis_only_with_reasoning"],
    "judge.max_judge_len": [JT + "test_the_judge_section_shapes_the_prompts_the_policy_sees"],
    "judge.shaping.floor": [
        JT + "test_judge_grpo_rewards_agreement_shaped_by_the_verdict_entropy",
        JT + "test_without_shaping_the_rewards_are_plus_and_minus_one",
    ],
    "judge.shaping.entropy": [JT + "test_votes_shaping_uses_the_groups_split"],
    "judge.sft.data": [JT + "test_sft_takes_its_rows_and_epochs_from_the_judge_section"],
    "judge.sft.epochs": [JT + "test_sft_takes_its_rows_and_epochs_from_the_judge_section"],
}

# Fields no code acts on yet: the reason, and where the effect would have to be implemented.


# --------------------------------------------------------------------------- meta-tests


def _test_names(path: Path) -> set[str]:
    """`name` of module-level test functions and `Class::name` of test methods, from the AST."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    names.add(f"{node.name}::{item.name}")
    return names


def test_every_leaf_field_is_mapped_exactly_once():
    leaves = leaf_fields()
    assert len(leaves) == len(set(leaves))
    missing = sorted(set(leaves) - set(OBSERVED_BY))
    unknown = sorted(set(OBSERVED_BY) - set(leaves))
    assert not missing, f"fields with no observing test (give each one, or remove it): {missing}"
    assert not unknown, f"entries for fields that do not exist: {unknown}"
    assert all(OBSERVED_BY[k] for k in OBSERVED_BY)


def test_the_walk_names_union_variants_and_every_cluster_role():
    leaves = set(leaf_fields())
    for name in (
        "model.source[tiny].hidden_size",
        "rollout.engine[vllm].tensor_parallel_size",
        "reward.writing[genrm].group_strategy",
        "reward.writing[genrm].model[local].path",
        "reward.writing[none].type",
        "learner.betas",
    ):
        assert name in leaves, name
    for role in ("rollout", "genrm", "reference", "learner"):
        assert {f"cluster.{role}.{k}" for k in ("replicas", "gpus", "cpus")} <= leaves
    assert {"cluster.verifier.replicas", "cluster.verifier.cpus"} <= leaves
    assert "cluster.verifier.gpus" not in leaves  # the verifier's section has no GPUs to set
    assert not any(
        k.endswith(("model.source", "rollout.engine", "cluster.rollout")) for k in leaves
    )


def test_every_referenced_test_exists():
    cache: dict[str, set[str]] = {}
    bad = []
    for field, node_ids in OBSERVED_BY.items():
        for node_id in node_ids:
            file, _, name = node_id.partition("::")
            name = name.split("[")[0]
            path = REPO / file
            if not path.is_file():
                bad.append(f"{field}: {node_id} (no file)")
                continue
            if file not in cache:
                cache[file] = _test_names(path)
            if name not in cache[file] or not name.split("::")[-1].startswith("test"):
                bad.append(f"{field}: {node_id}")
    assert not bad, "missing tests:\n  " + "\n  ".join(bad)


# --------------------------------------------------------------------------- helpers

ROWS = [PromptRow(id=f"p{i}", prompt=f"Write piece {i}.") for i in range(12)]
HELD_OUT = [PromptRow(id=f"h{i}", prompt=f"Held out {i}.") for i in range(3)]


def _cfg(tmp_path: Path, *overrides: str) -> RLMRConfig:
    # reward.writing.type: the tag, so that reward.writing.<key>=... overrides validate.
    return fake_run_config(
        tmp_path,
        "trainer.steps=1",
        "trainer.eval_every=0",
        "checkpoint.every=0",
        "reward.writing.type=genrm",
        *overrides,
    )


class Recorder(FakeServices):
    """FakeServices that also keeps the sampling parameters, the judge flag and the scores.

    A violating response meets a share 1 / (len + 1) of its constraints, so the all-violate
    variants rank a group differently."""

    def __init__(self, respond=None):
        super().__init__(respond)
        self.params: list[SamplingParams] = []
        self.judged: list[bool] = []
        self.scored: list[list[ScoredGroup]] = []

    def sample(self, rows, params):
        self.params.append(params)
        return super().sample(rows, params)

    def score(self, groups, judge=True):
        self.judged.append(judge)
        out = []
        for s in super().score(groups, judge):
            fraction = tuple(
                1.0 if ok else 1.0 / (len(t) + 1) for ok, t in zip(s.verdicts.passed, s.group.texts)
            )
            out.append(replace(s, verdicts=replace(s.verdicts, passed_fraction=fraction)))
        self.scored.append(out)
        return out


@pytest.fixture(autouse=True)
def _no_curves(monkeypatch):
    """Drawing curves.png takes most of a fake run's second; no field here is about it."""
    monkeypatch.setattr(RunDir, "plot", lambda self: None)


def _run(cfg, services=None, rows=ROWS, eval_rows=()):
    services = services or Recorder()
    metrics = run_training(cfg, services, RunDir(cfg), rows, eval_rows)
    return services, metrics


# --------------------------------------------------------------------------- driver


def test_sampling_follows_the_rollout_and_trainer_sections(tmp_path):
    cfg = _cfg(
        tmp_path / "a",
        "rollout.max_new_tokens=5",
        "rollout.temperature=0.7",
        "rollout.top_p=0.9",
        "rollout.top_k=7",
        "trainer.seed=3",
        "trainer.steps=2",
        "trainer.eval_samples_per_prompt=3",
        "trainer.eval_temperature=0.2",
    )
    services, _ = _run(cfg, eval_rows=HELD_OUT)
    step = dict(max_new_tokens=5, n=4, temperature=0.7, top_p=0.9, top_k=7)
    held_out = dict(step, n=3, temperature=0.2, seed=3)
    assert services.params == [
        SamplingParams(**held_out),  # step-0 baseline
        SamplingParams(**step, seed=3 * 1_000_003 + 1),
        SamplingParams(**step, seed=3 * 1_000_003 + 2),
        SamplingParams(**held_out),  # after the last step
    ]
    assert services.batches[0].advantages.shape == (2 * 4,)
    assert int(services.batches[0].response_mask.sum(-1).max()) == 5  # "ok ok ..." cut at 5 tokens

    cfg = _cfg(tmp_path / "b", "rollout.temperature=0.7", "rollout.n=2")
    services, _ = _run(cfg, eval_rows=HELD_OUT)
    assert [(p.n, p.temperature, p.seed) for p in services.params] == [
        (2, 0.7, 0),  # held-out sampling: trainer defaults, the rollout's temperature
        (2, 0.7, 1),
        (2, 0.7, 0),
    ]
    assert services.params[1].max_new_tokens == 256 and services.params[1].top_k == -1


def test_data_order_follows_data_seed_and_shuffle(tmp_path):
    orders = {}
    for seed in (0, 1):
        cfg = _cfg(tmp_path / str(seed), f"data.seed={seed}", "trainer.steps=2")
        services, _ = _run(cfg)
        expected = [r.id for r in PromptSampler(ROWS, seed=seed).take(4)]
        assert services.sampled_prompt_ids == [expected[:2], expected[2:]]
        orders[seed] = services.sampled_prompt_ids
    assert orders[0] != orders[1]
    cfg = _cfg(tmp_path / "flat", "data.shuffle=false", "trainer.steps=2")
    assert _run(cfg)[0].sampled_prompt_ids == [["p0", "p1"], ["p2", "p3"]]


def test_eval_follows_eval_size_and_eval_at_start(tmp_path):
    services, rows = _run(_cfg(tmp_path / "all"), eval_rows=HELD_OUT)
    assert [r["step"] for r in rows] == [0, 1] and rows[0]["eval/prompts"] == 3
    assert services.sampled_prompt_ids[0] == ["h0", "h1", "h2"]

    services, rows = _run(_cfg(tmp_path / "two", "data.eval_size=2"), eval_rows=HELD_OUT)
    assert rows[0]["eval/prompts"] == 2 and rows[1]["eval/prompts"] == 2
    assert services.sampled_prompt_ids[0] == ["h0", "h1"]

    services, rows = _run(
        _cfg(tmp_path / "late", "trainer.eval_at_start=false"), eval_rows=HELD_OUT
    )
    assert [r["step"] for r in rows] == [1] and "eval/pass_rate" in rows[0]
    first = [r.id for r in PromptSampler(ROWS, seed=0).take(2)]
    assert services.sampled_prompt_ids == [first, ["h0", "h1", "h2"]]  # no step-0 baseline


def test_eval_every_needs_held_out_prompts(tmp_path):
    from rlmr.config import ConfigError

    with pytest.raises(ConfigError, match="trainer.eval_every: is set but neither data.eval"):
        _cfg(tmp_path, "data.eval=null", "trainer.eval_every=2")
    assert _cfg(tmp_path, "trainer.eval_every=2").trainer.eval_every == 2


def _flat_then_mixed(prompt: str, i: int) -> str:
    """Prompt 0: every response violates, writing and constraints met vary; others: mixed."""
    if prompt == "Write piece 0.":
        return "x" * (i + 1)
    return "ok " * (i + 1) if i % 2 else "no" * (i + 1)


def test_rewards_and_advantages_follow_the_reward_and_algo_sections(tmp_path):
    variants = {
        "default": [],
        "margin": ["reward.margin=0.5"],
        "all_violate_writing": ["reward.all_violate=writing"],
        "all_violate_fraction": ["reward.all_violate=fraction"],
        "fixed": ["reward.strategy=fixed"],
        "fixed_weight": ["reward.strategy=fixed", "reward.fixed_weight=2.5"],
        "writing_only": ["reward.strategy=writing_only"],
        "verifier_only": ["reward.strategy=verifier_only"],
        "dr_grpo": ["algo.advantage=dr_grpo"],
        "rloo": ["algo.advantage=rloo"],
        "eps": ["algo.eps=0.5"],
    }
    got = {}
    for name, overrides in variants.items():
        cfg = _cfg(tmp_path / name, "data.shuffle=false", *overrides)
        services, _ = _run(cfg, Recorder(_flat_then_mixed))
        signals = RewardSignals.of(services.scored[0])
        r = cfg.reward
        rewards = mix_rewards(
            signals.writing,
            signals.passed,
            strategy=r.strategy,
            all_violate=r.all_violate,
            fixed_weight=r.fixed_weight,
            margin=r.margin,
            passed_fraction=signals.passed_fraction,
        )
        expected = group_advantages(rewards, method=cfg.algo.advantage, eps=cfg.algo.eps)
        assert torch.equal(services.batches[0].advantages, expected.reshape(-1).float()), name
        got[name] = services.batches[0].advantages
    assert (got["default"][:4] == 0).all()  # all_violate: zero
    for name in variants:  # every value changes what the learner receives
        if name != "default":
            assert not torch.equal(got[name], got["default"]), name
    assert not torch.equal(got["fixed"], got["fixed_weight"])


def test_the_judge_is_asked_only_with_a_writing_reward(tmp_path):
    services, rows = _run(_cfg(tmp_path / "genrm"))
    assert services.judged == [True] and rows[0]["judge_entropy_mean"] == 0.5
    assert rows[0]["writing_mean"] > 0
    cfg = _cfg(
        tmp_path / "none",
        "reward.strategy=verifier_only",
        "reward.writing={type: none}",
        "cluster.genrm.replicas=0",
    )
    services, rows = _run(cfg)
    assert services.judged == [False] and rows[0]["writing_mean"] == 0.0
    assert "judge_entropy_mean" not in rows[0]


def test_reference_and_kl_follow_beta_in_loss_and_clamp(tmp_path):
    services, rows = _run(_cfg(tmp_path / "off"))
    assert services.reference_calls == 0 and services.batches[0].ref_logprobs is None

    services, rows = _run(_cfg(tmp_path / "loss", "algo.kl.beta=0.1"))
    batch = services.batches[0]
    assert services.reference_calls == 1 and "kl_reward_mean" not in rows[0]
    assert torch.equal(
        batch.ref_logprobs, torch.full_like(batch.rollout_logprobs, -1.5) * batch.response_mask
    )

    # KL in the reward: per token, rollout -1 vs reference -1.5 (a log-ratio of 0.5), clamped.
    for clamp, per_token in ((20.0, 0.5), (0.25, 0.25)):
        cfg = _cfg(
            tmp_path / f"reward-{clamp}",
            "algo.kl={beta: 0.1, estimator: k1, in_loss: false}",
            f"algo.log_ratio_clamp={clamp}",
        )
        services, rows = _run(cfg)
        batch = services.batches[0]
        assert batch.ref_logprobs is None
        tokens = batch.response_mask.sum(-1).double()
        assert rows[0]["kl_reward_mean"] == pytest.approx(float((per_token * tokens).mean()))


def test_soft_constraints_engine_needs_a_writing_judge(tmp_path):
    from rlmr.config import ConfigError

    base = (
        "reward.strategy=verifier_only",
        "reward.writing={type: none}",
        "cluster.genrm.replicas=0",
    )
    with pytest.raises(ConfigError, match="soft_constraints: engine needs the judge's engine"):
        _cfg(tmp_path, *base, "reward.verifier.soft_constraints=engine")
    assert _cfg(tmp_path, *base).reward.verifier.soft_constraints == "unverifiable"


# --------------------------------------------------------------------------- run directory


def test_samples_per_step_sets_the_samples_written(tmp_path):
    cfg = _cfg(tmp_path / "none", "logging.samples_per_step=0", "trainer.steps=2")
    _run(cfg)
    assert not (tmp_path / "none" / "run" / "samples.jsonl").exists()
    cfg = _cfg(tmp_path / "three", "logging.samples_per_step=3", "trainer.steps=2")
    _run(cfg)
    lines = (tmp_path / "three" / "run" / "samples.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == [1, 1, 1, 2, 2, 2]


def test_run_dir_follows_output_dir_run_name_and_keep_last(tmp_path):
    for keep in (1, 3):
        out = tmp_path / f"out{keep}"
        cfg = _cfg(
            tmp_path / f"cfg{keep}",
            f"logging.output_dir={out}",
            f"logging.run_name=alpha-{keep}",
            "trainer.steps=3",
            "checkpoint.every=1",
            f"checkpoint.keep_last={keep}",
        )
        run = RunDir(cfg)
        assert run.path == out / f"alpha-{keep}" and (run.path / "config.yaml").is_file()
        run_training(cfg, FakeServices(), run, ROWS, ())
        names = [p.name for p in run.checkpoint_dirs()]
        assert names == ["step_000001", "step_000002", "step_000003"][-keep:]


def test_tensorboard_and_progress_bar_follow_the_logging_section(tmp_path, capsys):
    quiet = _cfg(tmp_path / "quiet", "logging.run_name=quiet")
    _run(quiet)
    assert not (tmp_path / "quiet" / "quiet" / "tb").exists()
    assert "quiet" not in capsys.readouterr().err

    loud = _cfg(
        tmp_path / "loud",
        "logging.run_name=loud",
        "logging.tensorboard=true",
        "logging.progress_bar=true",
    )
    _run(loud)
    events = list((tmp_path / "loud" / "loud" / "tb").glob("events.out.tfevents.*"))
    assert len(events) == 1 and events[0].stat().st_size > 0
    assert re.search(r"loud: 100%.*1/1", capsys.readouterr().err)


def test_wandb_follows_the_logging_section(tmp_path, monkeypatch):
    calls = []

    class Run:
        def log(self, metrics, step):
            calls.append(("log", step))

        def finish(self):
            calls.append(("finish",))

    fake = types.ModuleType("wandb")
    fake.init = lambda **kwargs: calls.append(("init", kwargs)) or Run()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    monkeypatch.setenv("WANDB_API_KEY", "not-a-real-key")

    _run(_cfg(tmp_path / "off"))
    assert calls == []

    on = ("logging.wandb={enabled: true, project: proj-x, entity: team-y}", "logging.run_name=w")
    cfg = _cfg(tmp_path / "on", *on)
    _run(cfg)
    (init,) = [c for c in calls if c[0] == "init"]
    assert (init[1]["project"], init[1]["entity"], init[1]["name"]) == ("proj-x", "team-y", "w")
    assert ("log", 1) in calls and calls[-1] == ("finish",)

    monkeypatch.delenv("WANDB_API_KEY")
    cfg = _cfg(tmp_path / "nokey", *on)
    with pytest.raises(RunDirError, match="WANDB_API_KEY is not set"):
        RunDir(cfg).open_loggers()


# --------------------------------------------------------------------------- placement


def test_placement_gives_every_replica_its_cpus(tmp_path):
    cpus = {"rollout": 0.5, "genrm": 0.75, "reference": 0.25, "learner": 1.5, "verifier": 2.0}
    roles = ", ".join(f"{r}: {{replicas: 2, cpus: {c}}}" for r, c in cpus.items())
    cfg = _cfg(tmp_path, f"cluster={{{roles}}}")
    plan = plan_placement(cfg.cluster)
    for role, c in cpus.items():
        assert [r.cpus for r in plan.replicas[role]] == [c, c], role
        assert [plan.bundles[r.bundles[0]]["CPU"] for r in plan.replicas[role]] == [c, c], role

    gpu = _cfg(
        tmp_path,
        "cluster={gpus_per_node: 2, learner: {gpus: 1, cpus: 3}, rollout: {gpus: 1, cpus: 2},"
        " genrm: {replicas: 1, cpus: 0.5}, reference: {replicas: 0}, verifier: {cpus: 4}}",
    )
    plan = plan_placement(gpu.cluster)
    got = {
        role: [(r.cpus, plan.bundles[r.bundles[0]]["CPU"]) for r in reps]
        for role, reps in plan.replicas.items()
    }
    assert got == {
        "learner": [(3.0, 3.0)],
        "rollout": [(2.0, 2.0)],
        "genrm": [(0.5, 0.5)],
        "verifier": [(4.0, 4.0)],
    }


# --------------------------------------------------------------------------- models and engines

# Every size differs from TinyModel's default, so a field that is ignored shows.
TINY = (
    "{type: tiny, vocab_size: 320, hidden_size: 24, intermediate_size: 40, num_layers: 3,"
    " num_heads: 3, max_position_embeddings: 96, seed: 0}"
)


@pytest.fixture(scope="module")
def tiny_dir(tiny_cache, tmp_path_factory):  # noqa: F811
    from rlmr.engine.loading import resolve_model_dir

    cfg = _cfg(tmp_path_factory.mktemp("tiny"), f"model.source={TINY}")
    return cfg, resolve_model_dir(cfg.model.source)


def test_tiny_source_fields_shape_the_model(tiny_dir):
    cfg, folder = tiny_dir
    config = json.loads((folder / "config.json").read_text())
    assert isinstance(cfg.model.source, TinyModel)
    assert {
        k: config[k]
        for k in (
            "vocab_size",
            "hidden_size",
            "intermediate_size",
            "num_hidden_layers",
            "num_attention_heads",
            "max_position_embeddings",
        )
    } == {
        "vocab_size": 320,
        "hidden_size": 24,
        "intermediate_size": 40,
        "num_hidden_layers": 3,
        "num_attention_heads": 3,
        "max_position_embeddings": 96,
    }


def test_package_source_is_looked_up_by_package_and_file(tmp_path, monkeypatch):
    from rlmr.engine.loading import ModelLoadError, resolve_model_dir

    pkg = tmp_path / "weights_pkg_for_config_test"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = _cfg(
        tmp_path, "model.source={type: package, package: weights_pkg_for_config_test, file: m.gguf}"
    )
    with pytest.raises(
        ModelLoadError, match="package 'weights_pkg_for_config_test' has no file 'm.gguf'"
    ):
        resolve_model_dir(cfg.model.source)
    cfg = _cfg(
        tmp_path, "model.source={type: package, package: no_such_pkg_for_config_test, file: m.gguf}"
    )
    with pytest.raises(
        ModelLoadError, match="package 'no_such_pkg_for_config_test' is not installed"
    ):
        resolve_model_dir(cfg.model.source)


def _fake_vllm(monkeypatch) -> list[dict]:
    """Install a `vllm` module whose `LLM` records its keyword arguments."""
    built: list[dict] = []

    def llm(**kwargs):
        built.append(kwargs)
        return FakeVLLM()

    module = types.ModuleType("vllm")
    module.LLM = llm
    module.SamplingParams = FakeSamplingParams
    monkeypatch.setitem(sys.modules, "vllm", module)
    return built


def _hf_folder(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text("{}")
    return path


def test_vllm_engine_section_reaches_vllm(tmp_path, monkeypatch):
    from rlmr.engine import build_engine

    built = _fake_vllm(monkeypatch)
    model = _hf_folder(tmp_path / "model")
    engine = (
        "{type: vllm, tensor_parallel_size: 2, gpu_memory_utilization: 0.5,"
        " enable_prefix_caching: false, enforce_eager: true, max_num_seqs: 7, max_logprobs: 9,"
        " seed_per_request: true}"
    )
    cfg = _cfg(
        tmp_path,
        f"model.source={{type: local, path: {model}}}",
        "model.dtype=bfloat16",
        "model.max_model_len=1024",
        "cluster.gpus_per_node=4",
        "cluster.rollout.gpus=2",
        "cluster.genrm.gpus=2",
        "cluster.learner.gpus=0",
        f"rollout.engine={engine}",
        f"reward.writing.engine={engine}",
        "reward.writing.dtype=float16",
        "reward.writing.max_judge_len=512",
    )
    expected = dict(
        model=str(model),
        tokenizer=str(model),
        tensor_parallel_size=2,
        gpu_memory_utilization=0.5,
        enable_prefix_caching=False,
        enforce_eager=True,
        max_num_seqs=7,
        max_logprobs=9,
        seed=5,
        distributed_executor_backend="ray",
        worker_extension_cls="rlmr.engine.vllm_worker.WeightSyncExtension",
    )
    # As RolloutWorker builds it, and as GenRMWorker does (the judge's dtype and length).
    rollout = build_engine(
        cfg.model.source,
        cfg.rollout.engine,
        dtype=cfg.model.dtype,
        max_model_len=cfg.model.max_model_len,
        seed=5,
    )
    writing = cfg.reward.writing
    judge = build_engine(
        cfg.model.source,
        writing.engine,
        dtype=writing.dtype,
        max_model_len=writing.max_judge_len,
        seed=5,
    )
    assert built == [
        dict(expected, dtype="bfloat16", max_model_len=1024),
        dict(expected, dtype="float16", max_model_len=512),
    ]
    assert type(rollout).__module__ == type(judge).__module__ == "rlmr.engine.vllm"
    assert rollout.tensor_parallel_size == 2 and rollout.info().extra == {"prefix_caching": False}
    assert rollout.seed_per_request and judge.seed_per_request


def test_local_source_reaches_vllm(tmp_path, monkeypatch):
    from rlmr.engine import build_engine

    built = _fake_vllm(monkeypatch)
    model, tok = _hf_folder(tmp_path / "model"), _hf_folder(tmp_path / "tok")
    for tokenizer, expected in (("", model), (f", tokenizer: {tok}", tok)):
        cfg = _cfg(
            tmp_path,
            f"model.source={{type: local, path: {model}{tokenizer}}}",
            "cluster.gpus_per_node=1",
            "rollout.engine={type: vllm}",
        )
        assert isinstance(cfg.model.source, LocalModel)
        build_engine(cfg.model.source, cfg.rollout.engine)
        assert (built[-1]["model"], built[-1]["tokenizer"]) == (str(model), str(expected))


def test_hf_engine_section_sets_batching_dtype_and_length(tiny_dir, tmp_path):
    from rlmr.engine import build_engine
    from rlmr.engine.hf import HFEngine

    prompts = ["one", "two two", "three three three"]
    budget = ("data.max_prompt_tokens=32", "rollout.max_new_tokens=16", "model.max_model_len=64")
    setups = {  # batch size: (policy dtype, judge dtype, extra overrides, policy engine length)
        1: ("bfloat16", "float32", budget, 64),
        2: ("float32", "bfloat16", (), 96),  # 2048 capped by max_position_embeddings
    }
    for batch_size, (policy_dtype, judge_dtype, extra, length) in setups.items():
        engine = f"{{type: hf, device: cpu, batch_size: {batch_size}}}"
        cfg = _cfg(
            tmp_path / str(batch_size),
            f"model.source={TINY}",
            f"model.dtype={policy_dtype}",
            f"reward.writing.dtype={judge_dtype}",
            f"rollout.engine={engine}",
            f"reward.writing.engine={engine}",
            *extra,
        )
        writing = cfg.reward.writing
        built = {  # as RolloutWorker and GenRMWorker build them
            "policy": build_engine(
                cfg.model.source,
                cfg.rollout.engine,
                dtype=cfg.model.dtype,
                max_model_len=cfg.model.max_model_len,
            ),
            "judge": build_engine(
                cfg.model.source,
                writing.engine,
                dtype=writing.dtype,
                max_model_len=writing.max_judge_len,
            ),
        }
        for role, engine in built.items():
            assert isinstance(engine, HFEngine)
            calls = []
            forward = engine.model.forward
            engine.model.forward = lambda *a, _f=forward, _c=calls, **k: _c.append(1) or _f(*a, **k)
            engine.next_token_logprobs(prompts, [5, 6])
            assert len(calls) == math.ceil(len(prompts) / batch_size), role
            dtype = policy_dtype if role == "policy" else judge_dtype
            assert next(engine.model.parameters()).dtype == getattr(torch, dtype)
        limit = built["policy"].info().max_model_len
        assert limit == length
        with pytest.raises(ValueError, match=f"exceed max_model_len {length}"):
            built["policy"].next_token_logprobs([list(range(5, 5 + length + 1))], [5])


def _hf_engines_built_with(tmp_path, field: str, value: str) -> list:
    """The rollout's and the judge's engines, built from a config whose two HF engine sections set
    `field: value`."""
    from rlmr.engine import build_engine

    engine = f"{{type: hf, device: cpu, {field}: {value}}}"
    cfg = _cfg(
        tmp_path / value,
        f"model.source={TINY}",
        f"rollout.engine={engine}",
        f"reward.writing.engine={engine}",
    )
    return [
        build_engine(cfg.model.source, section)
        for section in (cfg.rollout.engine, cfg.reward.writing.engine)
    ]


def test_hf_engine_linear_kernel_reaches_the_engine(tiny_dir, tmp_path):
    for kernel in ("default", "onednn"):
        for built in _hf_engines_built_with(tmp_path, "linear_kernel", kernel):
            assert built.linear_kernel == kernel
            assert ("forward" in vars(built.model.lm_head)) == (kernel == "onednn")


def test_hf_engine_decode_loop_reaches_the_engine(tiny_dir, tmp_path):
    for loop, chosen in (("auto", "own"), ("generate", "generate")):
        for built in _hf_engines_built_with(tmp_path, "decode_loop", loop):
            assert built.decode_loop == chosen


def test_hf_engine_device_reaches_the_loader(tmp_path, monkeypatch):
    from rlmr.engine import build_engine, loading

    seen = []

    class Stop(Exception):
        pass

    def load(source, dtype, device):
        seen.append(device)
        raise Stop

    monkeypatch.setattr(loading, "load_model_and_tokenizer", load)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for device in ("cuda", "cpu", "auto"):
        engine = f"{{type: hf, device: {device}}}"
        cfg = _cfg(tmp_path, f"rollout.engine={engine}", f"reward.writing.engine={engine}")
        for section in (cfg.rollout.engine, cfg.reward.writing.engine):
            with pytest.raises(Stop):
                build_engine(cfg.model.source, section)
    assert seen == ["cuda", "cuda", "cpu", "cpu", "cpu", "cpu"]


def test_prompt_sets_follow_the_data_section_and_chat_template(tiny_dir, tmp_path):
    from rlmr.data.prompts import DataError
    from rlmr.engine.loading import load_tokenizer
    from rlmr.training.rollout import load_prompt_sets

    def write(name, n, reference=None):
        rows = [
            {"id": f"{name}{i}", "prompt": f"Write piece {i}.", "constraints": []} for i in range(n)
        ]
        for row in rows:
            if reference:
                row["reference"] = reference
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return path

    train, held = write("t", 3), write("h", 2)
    base = (f"model.source={TINY}", f"data.train={train}")
    a, b = load_prompt_sets(_cfg(tmp_path, *base, f"data.eval={held}"))
    assert [r.id for r in a] == ["t0", "t1", "t2"] and [r.id for r in b] == ["h0", "h1"]
    a, b = load_prompt_sets(_cfg(tmp_path, *base, "data.eval=null"))
    assert len(a) == 3 and b == []

    tok = load_tokenizer(_cfg(tmp_path, *base).model.source)
    plain = len(tok("Write piece 0.", add_special_tokens=False)["input_ids"])
    chat = tok.apply_chat_template(
        [{"role": "user", "content": "Write piece 0."}], tokenize=False, add_generation_prompt=True
    )
    templated = len(tok(chat, add_special_tokens=False)["input_ids"])
    assert templated > plain
    for template, n in (("true", templated), ("false", plain)):
        cfg = _cfg(
            tmp_path,
            *base,
            "data.eval=null",
            f"model.chat_template={template}",
            f"data.max_prompt_tokens={n}",
        )
        assert len(load_prompt_sets(cfg)[0]) == 3
        cfg = _cfg(
            tmp_path,
            *base,
            "data.eval=null",
            f"model.chat_template={template}",
            f"data.max_prompt_tokens={n - 1}",
        )
        with pytest.raises(DataError, match=f"id 't0': prompt is {n} tokens"):
            load_prompt_sets(cfg)

    with pytest.raises(DataError, match="reference: required by reward.writing.group_strategy"):
        load_prompt_sets(
            _cfg(tmp_path, *base, "data.eval=null", "reward.writing.group_strategy=reference")
        )
    with_ref = write("r", 2, reference="A model answer.")
    cfg = _cfg(
        tmp_path,
        f"model.source={TINY}",
        f"data.train={with_ref}",
        "data.eval=null",
        "reward.writing.group_strategy=reference",
    )
    assert len(load_prompt_sets(cfg)[0]) == 2


# --------------------------------------------------------------------------- the judge


class RecordingEngine(FakeEngine):
    """FakeEngine that keeps the sampling parameters of every generate call."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.params: list[SamplingParams] = []

    def generate(self, prompts, params):
        self.params.append(params)
        return super().generate(prompts, params)


def test_judge_settings_follow_the_writing_section():
    from rlmr.judge import GenerativeJudge, JudgeGroup, JudgeSettings
    from rlmr.judge.prompts import ANALYSIS_STOP

    quality = lambda t: 1.0 + t.count("!")  # noqa: E731
    groups = [
        JudgeGroup("Write about the sea.", ("calm " * 180, "waves! " * 130, "storm!! " * 110))
    ]

    def judge(**fields):
        writing = GenRMReward(**{"reasoning": False, **fields})
        engine = RecordingEngine(
            next_token=preferring(quality), respond=lambda p, i: "A is better."
        )
        j = GenerativeJudge(engine, JudgeSettings.from_config(writing, seed=7))
        j.score_groups(groups)
        return engine, j.stats

    _, stats = judge()
    assert stats == {"judge_prompts": 2 * 2, "truncated": 0, "empty": 0}  # pivot, both orders
    assert judge(group_strategy="round_robin")[1]["judge_prompts"] == 2 * 3
    assert judge(swap=False)[1]["judge_prompts"] == 2
    assert judge(max_judge_len=1024)[1]["truncated"] > 0

    engine, _ = judge()
    assert engine.params == []  # no reasoning: no analysis is sampled
    engine, _ = judge(reasoning=True, max_analysis_tokens=9, temperature=0.6, max_judge_len=8192)
    assert engine.params == [
        SamplingParams(max_new_tokens=9, n=1, temperature=0.6, seed=7, stop=ANALYSIS_STOP)
    ]


def test_judge_cli_builds_the_judge_from_the_writing_section(tmp_path):
    import argparse

    from rlmr.cli import judge as judge_cli

    parser = argparse.ArgumentParser()
    judge_cli.add_arguments(parser)
    path = tmp_path / "run.yaml"
    path.write_text(
        "model: {source: {type: tiny}}\ndata: {train: x}\n"
        "reward: {writing: {type: genrm, dtype: bfloat16, max_judge_len: 640,"
        " engine: {type: hf, device: cpu, batch_size: 3}}}\n"
    )
    source, writing, engine = judge_cli._settings(parser.parse_args(["--config", str(path)]))
    assert source == TinyModel()  # no judge model: the policy's
    assert (writing.dtype, writing.max_judge_len) == ("bfloat16", 640)
    assert (engine.type, engine.device, engine.batch_size) == ("hf", "cpu", 3)

    args = ["--config", str(path), "--set", f"reward.writing.model={TINY}"]
    source, _, _ = judge_cli._settings(parser.parse_args(args))
    assert source == TinyModel(
        vocab_size=320,
        hidden_size=24,
        intermediate_size=40,
        num_layers=3,
        num_heads=3,
        max_position_embeddings=96,
    )
    args = [
        "--config",
        str(path),
        "--set",
        f"reward.writing.model={{type: local, path: {tmp_path}}}",
    ]
    assert judge_cli._settings(parser.parse_args(args))[0] == LocalModel(path=str(tmp_path))


# --------------------------------------------------------------------------- the learner


def test_deepspeed_config_follows_the_learner_section():
    from rlmr.training.deepspeed_settings import deepspeed_config

    plain = deepspeed_config(LearnerConfig(), "float32", 4, 1, 1)
    assert plain["zero_optimization"] == {"stage": 0} and plain["gradient_clipping"] == 1.0
    assert plain["bf16"] == {"enabled": False} and plain["fp16"] == {"enabled": False}

    cfg = LearnerConfig(zero_stage=2, offload_optimizer=True, grad_clip=0.5)
    ds = deepspeed_config(cfg, "bfloat16", 2, 3, 4)
    assert ds["zero_optimization"] == {
        "stage": 2,
        "offload_optimizer": {"device": "cpu", "pin_memory": True},
    }
    assert ds["gradient_clipping"] == 0.5 and ds["bf16"] == {"enabled": True}
    assert ds["train_batch_size"] == 2 * 3 * 4

    cfg = LearnerConfig(zero_stage=3, offload_params=True)
    assert deepspeed_config(cfg, "float16", 1, 1, 1)["zero_optimization"] == {
        "stage": 3,
        "offload_param": {"device": "cpu", "pin_memory": True},
        "stage3_gather_16bit_weights_on_model_save": True,
    }


class FakeDeepSpeedEngine:
    """Just enough of a DeepSpeed engine on one CPU rank: micro-step accumulation, gradient
    clipping, optimizer and scheduler steps at the boundary, checkpoint calls recorded."""

    def __init__(self, model, optimizer, lr_scheduler, config):
        self.module, self.optimizer, self.scheduler, self.config = (
            model,
            optimizer,
            lr_scheduler,
            config,
        )
        self.accumulate = config["gradient_accumulation_steps"]
        self.micro_steps = self.backwards = 0
        self.checkpoints: list[str] = []

    def __call__(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    def train(self):
        self.module.train()

    def eval(self):
        self.module.eval()

    def backward(self, loss):
        self.backwards += 1
        (loss / self.accumulate).backward()

    def step(self):
        self.micro_steps += 1
        if self.micro_steps % self.accumulate == 0:
            torch.nn.utils.clip_grad_norm_(
                self.module.parameters(), self.config["gradient_clipping"]
            )
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad()

    def was_step_applied(self) -> bool:
        return self.micro_steps % self.accumulate == 0

    def get_global_grad_norm(self):
        return None

    def save_checkpoint(self, path, tag, client_state, save_latest):
        self.checkpoints.append(path)


@pytest.fixture
def learner_factory(tiny_dir, monkeypatch):
    """Build `PolicyLearner`s over the tiny model with DeepSpeed replaced by the fake above."""
    from rlmr.training.learner import PolicyLearner, RankInfo

    seen: dict = {}
    module = types.ModuleType("deepspeed")
    # accelerate (under transformers' save_pretrained) looks the package up and unwraps its engine.
    module.__spec__ = importlib.machinery.ModuleSpec("deepspeed", None)
    module.DeepSpeedEngine = FakeDeepSpeedEngine
    module.init_distributed = lambda dist_backend, auto_mpi_discovery: seen.update(
        backend=dist_backend
    )

    def initialize(model, optimizer, lr_scheduler, config):
        engine = FakeDeepSpeedEngine(model, optimizer, lr_scheduler, config)
        return engine, optimizer, None, lr_scheduler

    module.initialize = initialize
    monkeypatch.setitem(sys.modules, "deepspeed", module)
    _, folder = tiny_dir

    def build(
        samples=4,
        dtype="float32",
        checkpointing=False,
        save_optimizer=True,
        algo=None,
        checkpoint_layers=None,
        **learner,
    ):
        learner = PolicyLearner(
            str(folder),
            dtype,
            LearnerConfig(**learner),
            algo or AlgoConfig(),
            RankInfo(0, 1, "cpu"),
            samples_per_step=samples,
            gradient_checkpointing=checkpointing,
            checkpoint_layers=checkpoint_layers,
            save_optimizer=save_optimizer,
        )
        return learner, seen

    with torch.random.fork_rng(devices=[]):
        yield build


def _batch(groups: int = 1) -> TrainBatch:
    prompt = (5, 17, 33, 9)
    made = [
        Group(
            PromptRow(f"p{g}", "x"),
            "x",
            prompt,
            tuple(
                Response("r", (40 + i + g, 41, 42 + i, 7), (-1.0,) * 4, "stop") for i in range(4)
            ),
        )
        for g in range(groups)
    ]
    advantages = torch.tensor([[1.0, -1.0, 0.5, -0.5]] * groups)
    return TrainBatch.of(TokenBatch.from_groups(made, pad_token_id=0), advantages)


def _params(learner) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in learner.engine.module.named_parameters()}


def test_learner_optimizer_follows_lr_weight_decay_betas_and_warmup(learner_factory):
    moved, stats, state = {}, {}, {}
    settings = {
        "base": {"lr": 1e-2},
        "small_lr": {"lr": 1e-3},
        "decay": {"lr": 1e-2, "weight_decay": 0.5},
        "betas": {"lr": 1e-2, "betas": (0.5, 0.9)},
        "warmup": {"lr": 1e-2, "warmup_steps": 4},
    }
    for name, fields in settings.items():
        learner, _ = learner_factory(**fields)
        before = _params(learner)
        stats[name] = learner.update(_batch())
        after = _params(learner)
        moved[name] = {k: after[k] - before[k] for k in before}
        state[name] = (before, learner.optimizer.state)

    def largest(name):
        return max(float(d.abs().max()) for d in moved[name].values())

    # Adam's first step moves each parameter by lr (times the warm-up factor) against its gradient.
    assert largest("base") == pytest.approx(1e-2, rel=1e-3)
    assert largest("small_lr") == pytest.approx(1e-3, rel=1e-3)
    assert largest("warmup") == pytest.approx(1e-2 / 4, rel=1e-3)
    assert (stats["base"]["lr"], stats["small_lr"]["lr"]) == (1e-2, 1e-3)
    assert stats["warmup"]["lr"] == pytest.approx(1e-2 * 2 / 4)  # the second step's factor
    # AdamW's decoupled decay: the same step, minus lr * weight_decay * the old weights.
    before = state["decay"][0]
    for k, d in moved["decay"].items():
        assert torch.allclose(d, moved["base"][k] - 1e-2 * 0.5 * before[k], atol=1e-6), k
    # The first moments are (1 - beta1) * grad, the second (1 - beta2) * grad^2.
    base_state, beta_state = state["base"][1], state["betas"][1]
    (p_base, s_base), (p_beta, s_beta) = (
        next(iter(base_state.items())),
        next(iter(beta_state.items())),
    )
    assert p_base.shape == p_beta.shape
    assert torch.allclose(s_beta["exp_avg"] / 0.5, s_base["exp_avg"] / 0.1, atol=1e-7)
    assert torch.allclose(
        s_beta["exp_avg_sq"] / 0.1, s_base["exp_avg_sq"] / 0.001, rtol=1e-4, atol=1e-12
    )


def test_learner_batches_follow_micro_batch_size_and_updates_per_step(learner_factory):
    for micro, updates, backwards, accumulate in ((2, 1, 4, 4), (4, 1, 2, 2), (2, 2, 4, 2)):
        learner, _ = learner_factory(samples=8, micro_batch_size=micro, updates_per_step=updates)
        assert learner.engine.config["train_micro_batch_size_per_gpu"] == micro
        assert learner.grad_accum == accumulate
        learner.update(_batch(groups=2))
        assert learner.updates == updates and learner.engine.backwards == backwards
        assert learner.engine.micro_steps == backwards
    with pytest.raises(ValueError, match="learner.micro_batch_size"):
        learner_factory(samples=8, micro_batch_size=3)
    with pytest.raises(ValueError, match="learner.micro_batch_size"):
        learner_factory(samples=8, micro_batch_size=4, updates_per_step=4)


def test_learner_follows_backend_dtype_checkpointing_and_loss_settings(learner_factory):
    learner, seen = learner_factory()
    assert seen["backend"] == "gloo"  # auto on CPU
    module = learner.engine.module
    assert not module.is_gradient_checkpointing and next(module.parameters()).dtype == torch.float32
    assert learner.loss == LossSettings()

    algo = AlgoConfig(
        clip={"low": 0.1, "high": 0.4, "dual": 3.0},
        kl={"beta": 0.2, "estimator": "k2"},
        loss_aggregation="seq_mean_token_mean",
        log_ratio_clamp=5.0,
    )
    learner, seen = learner_factory(backend="nccl", dtype="bfloat16", checkpointing=True, algo=algo)
    assert seen["backend"] == "nccl"
    module = learner.engine.module
    assert module.is_gradient_checkpointing and next(module.parameters()).dtype == torch.bfloat16
    assert learner.engine.config["bf16"] == {"enabled": True}
    assert learner.loss == LossSettings(
        clip_low=0.1,
        clip_high=0.4,
        dual_clip=3.0,
        kl_coef=0.2,
        kl_estimator="k2",
        log_ratio_clamp=5.0,
        aggregation="seq_mean_token_mean",
    )
    in_reward = AlgoConfig(kl={"beta": 0.2, "estimator": "k1", "in_loss": False})
    assert learner_factory(algo=in_reward)[0].loss.kl_coef == 0.0  # the driver applies it instead


def test_learner_recomputes_only_the_first_checkpoint_layers(learner_factory):
    from rlmr.training.recompute import checkpointed_layers, decoder_layers

    learner, _ = learner_factory(checkpointing=True)
    layers = len(decoder_layers(learner.engine.module))
    assert layers > 1 and checkpointed_layers(learner.engine.module) == layers
    learner, _ = learner_factory(checkpointing=True, checkpoint_layers=1)
    module = learner.engine.module
    assert [b.gradient_checkpointing for b in decoder_layers(module)] == [True] + [False] * (
        layers - 1
    )


def test_learner_saves_optimizer_state_only_when_asked(learner_factory, tmp_path):
    for save in (True, False):
        learner, _ = learner_factory(save_optimizer=save)
        learner.save(str(tmp_path / str(save)), {"step": 1})
        assert (tmp_path / str(save) / "policy" / "config.json").is_file()
        assert learner.engine.checkpoints == (
            [str(tmp_path / str(save) / "optimizer")] if save else []
        )

"""The policy learner on a tiny model: real DeepSpeed (gloo, one rank), on CPU, no Ray.

Each test would fail if the training path were broken in a way the other
tests cannot see: a negated advantage (log-probs move the wrong way), a mask
that lets prompt or padding tokens in (the update changes with them), a wrong
gradient-accumulation normaliser (the gradient changes with the micro-batch
size, and differs from the token mean computed here by hand), a KL term with
the wrong sign (log-probs move away from the reference).
"""

from __future__ import annotations

import dataclasses
import math
import os

import pytest
import torch

from rlmr.config import AlgoConfig, LearnerConfig, TinyModel
from rlmr.core.algo import LossSettings, policy_loss
from rlmr.core.records import Group, PromptRow, Response, TokenBatch, TrainBatch
from tests.fakes import tiny_cache  # noqa: F401 (fixture)

PROMPT = (5, 17, 33, 9, 12)
# Four responses of different lengths and disjoint tokens (so each one's log-prob can move alone).
RESPONSES = ((40, 41, 42, 43, 44, 45), (50, 51, 52), (60, 61, 62, 63), (70, 71))
ADVANTAGES = torch.tensor([[1.0, -1.0, 0.5, -0.5]])


@pytest.fixture(scope="module")
def model_dir(tiny_cache):  # noqa: F811
    from rlmr.engine.loading import resolve_model_dir

    source = TinyModel(hidden_size=32, intermediate_size=64, num_layers=2, num_heads=2, seed=3)
    return str(resolve_model_dir(source))


@pytest.fixture(scope="module", autouse=True)
def one_rank_process_group():
    """DeepSpeed's process group of one rank in this process (gloo), shared by every learner."""
    env = {
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(_free_port()),
        "RANK": "0",
        "WORLD_SIZE": "1",
        "LOCAL_RANK": "0",
        "DS_ACCELERATOR": "cpu",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_learner(
    model_dir,
    micro=4,
    updates=1,
    lr=1e-2,
    algo=None,
    grad_clip=1e6,
    zero=0,
    save_optimizer=True,
    dtype="float32",
    checkpointing=False,
    **learner_fields,
):
    from rlmr.training.learner import PolicyLearner, RankInfo

    learner_cfg = LearnerConfig(
        lr=lr,
        micro_batch_size=micro,
        updates_per_step=updates,
        grad_clip=grad_clip,
        backend="gloo",
        zero_stage=zero,
        **learner_fields,
    )
    return PolicyLearner(
        model_dir,
        dtype,
        learner_cfg,
        algo or AlgoConfig(),
        RankInfo(0, 1, "cpu"),
        samples_per_step=len(RESPONSES),
        seed=0,
        save_optimizer=save_optimizer,
        gradient_checkpointing=checkpointing,
    )


def tokens(prompt=PROMPT, responses=RESPONSES, pad=0) -> TokenBatch:
    group = Group(
        PromptRow("p", "x"),
        "x",
        prompt,
        tuple(Response("r", r, (-1.0,) * len(r), "stop") for r in responses),
    )
    return TokenBatch.from_groups([group], pad_token_id=pad)


def batch(advantages=ADVANTAGES, **kw) -> TrainBatch:
    return TrainBatch.of(tokens(**kw), advantages)


def response_logprob_sums(learner, tb: TokenBatch) -> torch.Tensor:
    return (learner.logprobs(tb) * tb.response_mask).sum(-1)


def weights(learner) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in learner.engine.module.state_dict().items()}


def test_positive_advantages_raise_log_probs_and_negative_ones_lower_them(model_dir):
    learner = make_learner(model_dir)
    tb = batch()
    before = response_logprob_sums(learner, tb)
    stats = learner.update(tb)
    moved = response_logprob_sums(learner, tb) - before
    assert (moved[ADVANTAGES[0] > 0] > 0).all() and (moved[ADVANTAGES[0] < 0] < 0).all(), moved
    assert stats["grad_norm"] > 0 and stats["lr"] == pytest.approx(1e-2)


def test_tokens_outside_the_response_mask_change_nothing(model_dir):
    a = make_learner(model_dir)
    b = make_learner(model_dir)
    plain = batch()
    # Other padding ids, and rollout log-probs outside the responses: the update must not see them.
    other = batch(pad=99)
    other = TrainBatch.of(
        TokenBatch(
            other.input_ids,
            other.attention_mask,
            other.response_mask,
            torch.where(other.response_mask, other.rollout_logprobs, torch.tensor(-7.0)),
        ),
        ADVANTAGES,
    )
    assert not torch.equal(plain.input_ids, other.input_ids)
    stats_a, stats_b = a.update(plain), b.update(other)
    assert stats_a["grad_norm"] == stats_b["grad_norm"]
    wa, wb = weights(a), weights(b)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def _manual_gradient_norm(model_dir, tb: TrainBatch, settings: LossSettings | None = None) -> float:
    """The token-mean GRPO loss over the whole batch, differentiated without DeepSpeed."""
    from transformers import AutoModelForCausalLM

    from rlmr.training.logprobs import sequence_token_logprobs

    model = AutoModelForCausalLM.from_pretrained(
        model_dir, dtype=torch.float32, local_files_only=True
    )
    logp, _ = sequence_token_logprobs(model, tb.input_ids, tb.attention_mask)
    out = policy_loss(
        logp,
        logp.detach(),
        tb.advantages,
        tb.response_mask,
        settings or LossSettings(),
        logp_ref=tb.ref_logprobs,
        logp_behaviour=tb.rollout_logprobs,
    )
    out.loss.backward()
    grads = [p.grad.norm() for p in model.parameters() if p.grad is not None]
    return float(torch.stack(grads).norm())


@pytest.mark.parametrize("micro", [1, 2, 4])
def test_the_loss_is_the_token_mean_of_the_batch_however_it_is_cut(model_dir, micro):
    """Responses of 6, 3, 4 and 2 tokens: a per-micro-batch mean would weigh them differently."""
    tb = batch()
    expected = _manual_gradient_norm(model_dir, tb)
    stats = make_learner(model_dir, micro=micro).update(tb)
    assert stats["grad_norm"] == pytest.approx(expected, rel=1e-5)


def test_micro_batch_sizes_give_the_same_update(model_dir):
    # Adam's first step is about lr * sign(gradient): a tolerance far below lr = 1e-2 catches any
    # gradient whose sign differs, while allowing Adam's eps to magnify float rounding a little.
    tb = batch()
    updated = []
    for micro in (1, 2, 4):
        learner = make_learner(model_dir, micro=micro)
        learner.update(tb)
        updated.append(weights(learner))
    for other in updated[1:]:
        assert all(torch.allclose(updated[0][k], other[k], atol=1e-5) for k in other)


def test_kl_in_the_loss_pulls_log_probs_toward_the_reference(model_dir):
    """Zero advantages: only the KL term moves the policy, toward the reference's side."""
    algo = AlgoConfig(kl={"beta": 1.0, "estimator": "k3", "in_loss": True})
    tb = tokens()
    zero = torch.zeros(1, len(RESPONSES))
    for shift in (+1.0, -1.0):
        learner = make_learner(model_dir, algo=algo)
        current = learner.logprobs(tb)
        reference = (current + shift) * tb.response_mask
        before = response_logprob_sums(learner, tb)
        stats = learner.update(TrainBatch.of(tb, zero, ref_logprobs=reference))
        moved = response_logprob_sums(learner, tb) - before
        assert (torch.sign(moved) == shift).all(), (shift, moved)
        assert stats["kl"] > 0


def test_kl_in_the_loss_is_the_manual_gradient_too(model_dir):
    algo = AlgoConfig(kl={"beta": 0.5, "estimator": "k3", "in_loss": True})
    learner = make_learner(model_dir, micro=2, algo=algo)
    tb = tokens()
    ref = (learner.logprobs(tb) - 0.3) * tb.response_mask
    batch_ = TrainBatch.of(tb, ADVANTAGES, ref_logprobs=ref)
    expected = _manual_gradient_norm(model_dir, batch_, LossSettings(kl_coef=0.5))
    assert learner.update(batch_)["grad_norm"] == pytest.approx(expected, rel=1e-5)


def test_several_updates_per_step_keep_the_old_log_probs_fixed(model_dir):
    """With two updates, the second one sees ratios away from 1: clipping can bind, and the
    importance ratio reported is no longer exactly 1."""
    one = make_learner(model_dir, micro=2, updates=1, lr=5e-2).update(batch())
    two = make_learner(model_dir, micro=2, updates=2, lr=5e-2).update(batch())
    assert one["ratio_mean"] == pytest.approx(1.0, abs=1e-6) and one["clip_frac"] == 0.0
    assert abs(two["ratio_mean"] - 1.0) > 1e-4


@pytest.mark.parametrize("zero", [0, 3])
def test_a_checkpoint_holds_the_weights_the_tokenizer_and_the_optimizer(model_dir, tmp_path, zero):
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # A warm-up makes the learning rate depend on the scheduler's state, which must travel too.
    learner = make_learner(model_dir, zero=zero, warmup_steps=4)
    assert learner.update(batch())["lr"] == pytest.approx(1e-2 * 2 / 4)
    exported = learner.full_state_dict()
    ck = tmp_path / "run" / "staging" / "ck"  # parents are created
    learner.save(str(ck), {"step": 7})
    policy = ck / "policy"
    saved = load_file(str(policy / "model.safetensors"))
    assert saved.keys() == exported.keys() and len(saved) == 2 * 9 + 3
    assert all(torch.equal(saved[k], exported[k]) for k in saved)
    assert {p.name for p in policy.iterdir()} == {
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "chat_template.jinja",
        "generation_config.json",
    }
    written = {p.name for p in (ck / "optimizer").iterdir()}
    assert "state" in written and "latest" not in written  # resume names the tag; no pointer
    AutoTokenizer.from_pretrained(str(policy))
    reloaded = AutoModelForCausalLM.from_pretrained(str(policy), local_files_only=True)
    assert all(torch.equal(reloaded.state_dict()[k], exported[k]) for k in exported)

    # A fresh learner restores weights, optimizer, scheduler and client state: the next update
    # matches, learning rate included.
    other = make_learner(model_dir, zero=zero, warmup_steps=4)
    assert other.load(str(ck))["step"] == 7
    restored = other.full_state_dict()
    assert all(torch.equal(restored[k], exported[k]) for k in exported)
    lr_a, lr_b = learner.update(batch())["lr"], other.update(batch())["lr"]
    assert lr_a == lr_b == pytest.approx(1e-2 * 3 / 4)
    after_a, after_b = learner.full_state_dict(), other.full_state_dict()
    assert all(torch.equal(after_a[k], after_b[k]) for k in after_a)
    # The export is a copy: the update after it left it as it was saved.
    assert not all(torch.equal(after_a[k], exported[k]) for k in exported)
    assert all(torch.equal(saved[k], exported[k]) for k in saved)

    # Saving into a folder that already exists (the run's staging folder) works as well.
    again = tmp_path / "again"
    again.mkdir()
    other.save(str(again), {"step": 8})
    saved = load_file(str(again / "policy" / "model.safetensors"))
    assert all(torch.equal(saved[k], after_b[k]) for k in after_b)


def test_without_optimizer_state_only_the_policy_is_saved_and_resume_is_refused(
    model_dir, tmp_path
):
    learner = make_learner(model_dir, save_optimizer=False)
    learner.save(str(tmp_path / "ck"))
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["policy"]
    with pytest.raises(FileNotFoundError, match="no optimizer/ state to resume from"):
        make_learner(model_dir).load(str(tmp_path / "ck"))


# --------------------------------------------------------------------------- exact behaviour
# What the tests above leave open: the DeepSpeed config, the log-prob function itself, the other
# loss aggregation, the update's statistics, several updates per step, the warm-up, the errors,
# the weight export and the collectives' single-rank shortcuts.


def test_deepspeed_config_is_exactly_the_learner_section():
    from rlmr.training.deepspeed_settings import deepspeed_config

    fixed = {
        "zero_allow_untested_optimizer": True,  # the client AdamW
        "steps_per_print": 10**9,  # DeepSpeed never prints on its own
        "wall_clock_breakdown": False,
    }
    assert deepspeed_config(LearnerConfig(zero_stage=1, grad_clip=0.5), "float16", 2, 3, 4) == {
        "train_micro_batch_size_per_gpu": 2,
        "gradient_accumulation_steps": 3,
        "train_batch_size": 2 * 3 * 4,
        "gradient_clipping": 0.5,
        "zero_optimization": {"stage": 1},
        "bf16": {"enabled": False},
        "fp16": {"enabled": True},
        **fixed,
    }
    offload = {"device": "cpu", "pin_memory": True}
    stage1 = deepspeed_config(
        LearnerConfig(zero_stage=1, offload_optimizer=True), "float32", 1, 1, 1
    )
    assert stage1["zero_optimization"] == {"stage": 1, "offload_optimizer": offload}
    assert stage1["bf16"] == stage1["fp16"] == {"enabled": False}
    # Without ZeRO there is no optimizer to offload, even from a config that skipped validation.
    stage0 = LearnerConfig.model_construct(**{**dict(LearnerConfig()), "offload_optimizer": True})
    assert deepspeed_config(stage0, "bfloat16", 1, 1, 1)["zero_optimization"] == {"stage": 0}
    stage3 = LearnerConfig(zero_stage=3, offload_optimizer=True, offload_params=True)
    assert deepspeed_config(stage3, "bfloat16", 1, 1, 1)["zero_optimization"] == {
        "stage": 3,
        "offload_optimizer": offload,
        "offload_param": offload,
        "stage3_gather_16bit_weights_on_model_save": True,
    }


def test_sequence_token_logprobs_are_the_log_softmax_of_each_target(model_dir):
    from transformers import AutoModelForCausalLM

    from rlmr.core.algo import entropy_from_logits
    from rlmr.training.logprobs import sequence_token_logprobs

    model = AutoModelForCausalLM.from_pretrained(
        model_dir, dtype=torch.float32, local_files_only=True
    )
    ids = torch.tensor([[7, 7, 5, 17, 40, 41, 42], [5, 17, 33, 9, 12, 50, 51]])
    # The first row's first two tokens are masked out (left padding): the mask must reach the model.
    attention = torch.tensor([[0, 0, 1, 1, 1, 1, 1], [1] * 7])
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=attention).logits[:, :-1].float()
        unmasked = model(input_ids=ids).logits[:, :-1].float()
    expected = torch.log_softmax(logits, -1).gather(-1, ids[:, 1:, None]).squeeze(-1)
    assert not torch.allclose(logits[0, 2:], unmasked[0, 2:], atol=1e-3)

    logp, ent = sequence_token_logprobs(model, ids, attention)
    assert ent is None and logp.shape == (2, 6) and logp.requires_grad
    assert torch.allclose(logp, expected, atol=1e-5)
    logp2, ent = sequence_token_logprobs(model, ids, attention, with_entropy=True)
    assert torch.allclose(logp2, expected, atol=1e-5) and not ent.requires_grad
    assert torch.allclose(ent, entropy_from_logits(logits), atol=1e-5)
    # One target per row keeps its [batch, 1] shape.
    one, _ = sequence_token_logprobs(model, ids[:, :2], attention[:, :2])
    assert one.shape == (2, 1)
    # From a first target column on: the same numbers there, zeros before, the same shape,
    # and the output layer ran on those positions only.
    seen = []
    hook = model.lm_head.register_forward_hook(lambda m, i, o: seen.append(o.shape[1]))
    for c in (1, 3, 5):
        part, part_ent = sequence_token_logprobs(
            model, ids, attention, with_entropy=True, first_target=c
        )
        assert part.shape == (2, 6) and part.requires_grad
        assert torch.allclose(part[:, c:], expected[:, c:], atol=1e-5)
        assert torch.equal(part[:, :c], torch.zeros(2, c))
        assert torch.allclose(part_ent[:, c:], ent[:, c:], atol=1e-5)
        assert torch.equal(part_ent[:, :c], torch.zeros(2, c))
    hook.remove()
    assert seen == [7 - 1, 7 - 3, 7 - 5]


def test_response_logprobs_are_the_full_computation_on_responses_in_any_micro_batches(model_dir):
    """What the reference model and the learner's old log-probs return: exact on response
    tokens, 0 elsewhere, whatever the micro-batch (groups with prompts of different lengths)."""
    from transformers import AutoModelForCausalLM

    from rlmr.training.logprobs import response_logprobs, sequence_token_logprobs

    model = AutoModelForCausalLM.from_pretrained(
        model_dir, dtype=torch.float32, local_files_only=True
    )
    short = tokens(prompt=PROMPT[:2])
    long = tokens()
    tb = TokenBatch(
        *(
            torch.cat(
                [
                    torch.nn.functional.pad(getattr(b, f), (0, width - getattr(b, f).shape[1]))
                    for b in (short, long)
                ]
            )
            for f, width in (
                ("input_ids", long.input_ids.shape[1]),
                ("attention_mask", long.input_ids.shape[1]),
                ("response_mask", long.input_ids.shape[1] - 1),
                ("rollout_logprobs", long.input_ids.shape[1] - 1),
            )
        )
    )
    with torch.no_grad():
        full, _ = sequence_token_logprobs(model, tb.input_ids, tb.attention_mask)
    expected = full * tb.response_mask
    for micro in (1, 3, len(tb)):
        got = response_logprobs(model, tb, micro, torch.device("cpu"))
        assert got.dtype == torch.float32 and not got.requires_grad
        assert torch.allclose(got, expected, atol=1e-5)
        assert torch.equal(got[~tb.response_mask], torch.zeros(int((~tb.response_mask).sum())))
    assert (expected[tb.response_mask] != 0).all()


def test_first_response_column_is_the_earliest_response_target_of_any_row():
    from rlmr.training.logprobs import first_response_column

    mask = torch.tensor(
        [[0, 0, 0, 1, 1, 0], [0, 0, 1, 1, 0, 0], [0, 0, 0, 0, 1, 1]], dtype=torch.bool
    )
    assert first_response_column(mask) == 2
    assert first_response_column(mask[[0, 2]]) == 3
    assert first_response_column(torch.zeros(2, 4, dtype=torch.bool)) == 0


def _expected_stats(model_dir, tb: TrainBatch, micro: int, settings=None) -> dict:
    """The statistics `update` reports for one update: each micro-batch's, averaged, computed
    here without DeepSpeed (`logp_old` is the detached current log-prob)."""
    from transformers import AutoModelForCausalLM

    from rlmr.core.algo import masked_mean
    from rlmr.training.logprobs import sequence_token_logprobs

    settings = settings or LossSettings()
    model = AutoModelForCausalLM.from_pretrained(
        model_dir, dtype=torch.float32, local_files_only=True
    )
    with torch.no_grad():
        logp, ent = sequence_token_logprobs(
            model, tb.input_ids, tb.attention_mask, with_entropy=True
        )
    rows: dict[str, list[float]] = {}
    for part in range(0, len(tb), micro):
        s = slice(part, part + micro)
        mask = tb.response_mask[s]
        out = policy_loss(
            logp[s],
            logp[s],
            tb.advantages[s],
            mask,
            settings,
            logp_behaviour=tb.rollout_logprobs[s],
        )
        got = {
            "pg_loss": out.pg_loss,
            "kl": out.kl,
            "clip_frac": out.clip_frac,
            "ratio_mean": out.ratio_mean,
            "approx_kl_old": out.approx_kl_old,
            "entropy": float(masked_mean(ent[s], mask)),
            "logprob_gap_rollout": float(
                masked_mean((logp[s] - tb.rollout_logprobs[s]).abs(), mask)
            ),
        }
        if settings.behaviour_cap is not None:
            got["behaviour_weight_mean"] = out.behaviour_weight_mean
            got["behaviour_weight_max"] = out.behaviour_weight_max
            got["behaviour_truncated_frac"] = out.behaviour_truncated_frac
        for k, v in got.items():
            rows.setdefault(k, []).append(v)
    stats = {k: max(v) if k.endswith("_max") else sum(v) / len(v) for k, v in rows.items()}
    # the NLL is the one token mean over the whole batch, not a mean of micro-batch means
    stats["nll"] = float(-(logp * tb.response_mask).sum() / tb.response_mask.sum())
    return stats


def _masked_prompt_batch() -> TrainBatch:
    """`batch()` with the first prompt token of rows 0 and 2 masked out of attention."""
    tb = batch()
    attention = tb.attention_mask.clone()
    attention[[0, 2], 0] = 0
    return TrainBatch(tb.input_ids, attention, tb.response_mask, tb.rollout_logprobs, tb.advantages)


def test_update_reports_each_statistic_averaged_over_micro_batches(model_dir):
    """Two micro-batches, an attention mask with holes: every statistic but the NLL (a token
    mean over the whole batch) is the mean of the micro-batches' values, computed by hand."""
    tb = _masked_prompt_batch()
    stats = make_learner(model_dir, micro=2).update(tb)
    expected = _expected_stats(model_dir, tb, micro=2)
    assert set(stats) == set(expected) | {
        "grad_norm",
        "lr",
        "skipped_update_frac",
        "nonfinite_logprobs",
    }
    assert stats["skipped_update_frac"] == 0.0 and stats["nonfinite_logprobs"] == 0.0
    for k, v in expected.items():
        assert stats[k] == pytest.approx(v, rel=1e-5, abs=1e-6), k
    assert stats["entropy"] > 0 and stats["logprob_gap_rollout"] > 0
    assert stats["grad_norm"] == pytest.approx(_manual_gradient_norm(model_dir, tb), rel=1e-5)
    assert stats["lr"] == 1e-2


@pytest.mark.parametrize("micro", [1, 2])
def test_seq_mean_token_mean_weighs_every_response_the_same(model_dir, micro):
    """The other aggregation: the normaliser counts sequences, not tokens, whatever the cut."""
    algo = AlgoConfig(loss_aggregation="seq_mean_token_mean")
    settings = LossSettings(aggregation="seq_mean_token_mean")
    tb = batch()
    expected = _manual_gradient_norm(model_dir, tb, settings)
    assert expected != pytest.approx(_manual_gradient_norm(model_dir, tb), rel=1e-3)
    stats = make_learner(model_dir, micro=micro, algo=algo).update(tb)
    assert stats["grad_norm"] == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("aggregation", ["token_mean", "seq_mean_token_mean"])
def test_a_batch_with_a_single_response_token_is_not_scaled_down(model_dir, aggregation):
    """One token (and one sequence) in the whole batch: the normaliser is 1, not a floor above."""
    tb = batch(responses=((40,), (), (), ()))
    assert int(tb.response_mask.sum()) == 1
    algo = AlgoConfig(loss_aggregation=aggregation)
    expected = _manual_gradient_norm(model_dir, tb, LossSettings(aggregation=aggregation))
    assert make_learner(model_dir, algo=algo).update(tb)["grad_norm"] == pytest.approx(
        expected, rel=1e-5
    )


def _dropout_model(model_dir, tmp_path) -> str:
    """The tiny model with attention dropout: train-mode and eval-mode log-probs then differ."""
    import json
    import shutil

    out = tmp_path / "dropout-model"
    shutil.copytree(model_dir, out)
    config = json.loads((out / "config.json").read_text())
    config["attention_dropout"] = 0.5
    (out / "config.json").write_text(json.dumps(config))
    return str(out)


def test_one_update_uses_its_own_detached_log_probs_as_the_old_ones(model_dir, tmp_path):
    """ALGORITHMS.md 1.3: with one update, logp_old is the current log-prob, detached, so the ratio
    is exactly 1 even when dropout makes every forward pass different; no separate pass."""
    learner = make_learner(_dropout_model(model_dir, tmp_path))
    stats = learner.update(batch())
    assert stats["ratio_mean"] == 1.0 and stats["clip_frac"] == 0.0
    assert stats["approx_kl_old"] == 0.0


def test_several_updates_share_old_log_probs_taken_before_the_first(model_dir):
    tb = batch()
    learner = make_learner(model_dir, micro=1, updates=2, lr=5e-2, warmup_steps=2)
    before = learner.logprobs(tb)
    stats = learner.update(tb)
    assert learner.updates == 2
    # Warm-up over optimizer steps (2 steps x 2 updates): after two of them, 3/4 of the rate.
    assert stats["lr"] == pytest.approx(5e-2 * 3 / 4)
    assert learner.update(tb)["lr"] == pytest.approx(5e-2)  # capped at the rate after warm-up
    assert learner.updates == 4

    # Old log-probs given with the batch are used as they are: a shift of 0.1 shows in the ratio.
    fresh = make_learner(model_dir, micro=2, updates=1, lr=5e-2)
    given = fresh.update(dataclasses.replace(tb, old_logprobs=(before - 0.1) * tb.response_mask))
    assert given["ratio_mean"] == pytest.approx(math.exp(0.1), rel=1e-4)


def test_update_refuses_a_wrong_shard(model_dir):
    learner = make_learner(model_dir, micro=1, updates=2)
    with pytest.raises(ValueError, match=r"^shard of 2 samples; expected 4$"):
        learner.update(batch(responses=RESPONSES[:2], advantages=ADVANTAGES[:, :2]))


def _nan_forward(learner, which: set[int]):
    """Make the model's logits NaN on these micro-batches' forward calls (1-based), as bad weights
    would. The call that only builds a shared prompt's cache (`shared_prompt_cache`: a cache
    asked for, none given) is not one of them: the micro-batch's logits come from the next."""
    calls = [0]

    def hook(module, args, kwargs, out):
        if kwargs.get("use_cache") and kwargs.get("cache", kwargs.get("past_key_values")) is None:
            return out
        calls[0] += 1
        if calls[0] in which:
            out.logits = out.logits * float("nan")
        return out

    return learner.engine.module.register_forward_hook(hook, with_kwargs=True)


def _all_weights(learner, zero) -> dict[str, torch.Tensor]:
    return (
        {k: v.clone() for k, v in learner.full_state_dict().items()}
        if zero == 3
        else (weights(learner))
    )


@pytest.mark.parametrize(
    "zero, dtype", [(0, "float32"), (2, "float32"), (3, "float32"), (0, "bfloat16")]
)
def test_a_non_finite_forward_skips_the_update_and_leaves_the_optimizer_as_it_was(
    model_dir, zero, dtype
):
    # NaN on the second of two micro-batches: the first one's gradient is already accumulated.
    # A warm-up schedule, so a learning-rate step taken on the skipped update would show.
    # bf16 without ZeRO: DeepSpeed's bf16 optimizer (fp32 master weights) checks for itself.
    learner = make_learner(
        model_dir, micro=2, zero=zero, grad_clip=1.0, warmup_steps=4, dtype=dtype
    )
    before = _all_weights(learner, zero)
    hook = _nan_forward(learner, {2})
    stats = learner.update(batch())
    hook.remove()
    assert stats["skipped_update_frac"] == 1.0
    assert stats["nonfinite_logprobs"] == 0.5
    assert "grad_norm" not in stats
    after = _all_weights(learner, zero)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert learner.updates == 0
    # The NaN micro-batch adds nothing to the shard's NLL: it is the first micro-batch's alone.
    first = batch().select(slice(0, 2))
    nll_first = -(learner.logprobs(first) * first.response_mask).sum() / first.response_mask.sum()
    assert stats["nll"] == pytest.approx(float(nll_first), rel=1e-5)
    nan_stats = stats
    # The next update is exactly the first update of a learner that never saw the NaN: no
    # moment, step count, learning-rate step or stale gradient was left behind.
    stats = learner.update(batch())
    clean = make_learner(model_dir, micro=2, zero=zero, grad_clip=1.0, warmup_steps=4, dtype=dtype)
    expected = clean.update(batch())
    assert stats["skipped_update_frac"] == 0.0 and stats["nonfinite_logprobs"] == 0.0
    assert stats["grad_norm"] == expected["grad_norm"] > 0
    assert stats["lr"] == expected["lr"]
    got, want = _all_weights(learner, zero), _all_weights(clean, zero)
    assert all(torch.equal(got[k], want[k]) for k in want)
    assert set(nan_stats) | {"grad_norm"} == set(expected)  # no bookkeeping key leaks out


def test_statistics_combine_as_means_and_maxima_as_maxima():
    from rlmr.training.learner import combine_stat

    assert combine_stat("behaviour_weight_max", [1.0, 3.0, 2.0]) == 3.0
    assert combine_stat("staleness_max", [0.5]) == 0.5
    assert combine_stat("kl", [1.0, 3.0, 2.0]) == 2.0
    assert combine_stat("max_len", [1.0, 3.0]) == 2.0  # only a `_max` suffix is a maximum


def test_a_bf16_learner_keeps_fp32_master_weights_and_the_whole_batch_s_gradient(model_dir):
    """bf16 (`model.dtype: bfloat16`, what GPU runs use and what a CPU with AMX computes fast):
    the model computes in bf16, DeepSpeed's optimizer steps fp32 master weights, so updates far
    below bf16's resolution still accumulate; the gradient (and its reported norm) is the whole
    batch's over every micro-batch, as in fp32, not the last micro-batch's."""
    fp32 = make_learner(model_dir, micro=2, lr=1e-6)
    bf16 = make_learner(model_dir, micro=2, lr=1e-6, dtype="bfloat16")
    assert next(bf16.engine.module.parameters()).dtype == torch.bfloat16
    masters = [p for g in bf16.optimizer.optimizer.param_groups for p in g["params"]]
    assert masters and all(p.dtype == torch.float32 for p in masters)
    before = [p.detach().clone() for p in masters]
    low = [p.detach().clone() for p in bf16.engine.module.parameters()]
    want, got = fp32.update(batch()), bf16.update(batch())
    assert got["grad_norm"] == pytest.approx(want["grad_norm"], rel=0.05)
    # Every master weight moved by about lr (0.74 lr: DeepSpeed's bf16 optimizer without ZeRO
    # takes one all-zero Adam step when it starts, so the first real one is Adam's second), far
    # below bf16's resolution, so the bf16 weights the model computes with barely moved.
    moved = torch.cat([(p.detach() - b).abs().flatten() for p, b in zip(masters, before)])
    assert 0.5e-6 < float(moved.median()) <= 1.01e-6
    changed = torch.cat(
        [(p.detach() != b).flatten() for p, b in zip(bf16.engine.module.parameters(), low)]
    )
    assert float(changed.float().mean()) < 0.05


def test_a_bf16_learner_with_gradient_checkpointing_updates_as_one_without(model_dir):
    """A checkpointed layer recomputes in the backward under the forward's settings (the math
    attention of a bf16 model on CPU, the flattened shared-prompt attention): the update is the
    one without checkpointing, where a plain checkpoint refuses the recomputed tensors."""
    plain = make_learner(model_dir, micro=2, lr=1e-3, dtype="bfloat16")
    checkpointed = make_learner(model_dir, micro=2, lr=1e-3, dtype="bfloat16", checkpointing=True)
    assert checkpointed.engine.module.is_activation_checkpointing
    want, got = plain.update(batch()), checkpointed.update(batch())
    assert got["grad_norm"] == pytest.approx(want["grad_norm"], rel=1e-5) and want["grad_norm"] > 0
    for a, b in zip(plain.engine.module.parameters(), checkpointed.engine.module.parameters()):
        assert torch.equal(a, b)


def test_a_skipped_update_leaves_the_step_s_other_updates_to_run(model_dir):
    # Two updates per step: old log-probs take forwards 1-2, the first update forward 3 (NaN).
    learner = make_learner(model_dir, micro=2, updates=2)
    hook = _nan_forward(learner, {3})
    stats = learner.update(batch())
    hook.remove()
    assert stats["skipped_update_frac"] == 0.5
    assert learner.updates == 1


def test_a_step_deepspeed_discards_is_counted_as_skipped(model_dir):
    learner = make_learner(model_dir, micro=1, updates=2)
    learner.engine.was_step_applied = lambda: False
    stats = learner.update(batch())
    assert stats["skipped_update_frac"] == 1.0
    assert "grad_norm" not in stats and learner.updates == 0


@pytest.mark.parametrize("zero", [0, 3])
def test_weights_are_broadcast_in_order_from_rank_zero_only(model_dir, zero, monkeypatch):
    import rlmr.engine.weight_group as weight_group
    from rlmr.training.learner import RankInfo

    learner = make_learner(model_dir, zero=zero)
    exported = learner.full_state_dict()
    names = [name for name, _ in learner.engine.module.named_parameters()]
    assert learner.weight_metas() == [
        (name, "float32", tuple(exported[name].shape)) for name in names
    ]

    made = []
    monkeypatch.setattr(
        weight_group, "create_weight_group", lambda *args: made.append(args) or "group"
    )
    learner.init_weight_group("10.0.0.1", 29511, 3)
    assert made == [("10.0.0.1", 29511, 0, 3, torch.device("cpu"))]
    assert learner._weight_group == "group"

    class Group:  # the NCCL communicator's broadcast, recorded
        def __init__(self):
            self.sent = []

        def broadcast(self, tensor, src=0, stream=None):
            assert src == 0
            self.sent.append(tensor.detach().clone())

    learner._weight_group = group = Group()
    assert learner.broadcast_weights() == len(names)  # ZeRO-3: each parameter gathered whole
    assert all(torch.equal(t, exported[n]) for n, t in zip(names, group.sent, strict=True))
    # Another learner rank takes part in the gathers but sends nothing and holds no group.
    learner.rank = RankInfo(1, 2, "cpu")
    del learner._weight_group
    assert learner.broadcast_weights() == 0 and len(group.sent) == len(names)
    assert learner.full_state_dict() is None


def test_the_tokenizer_files_and_only_those_are_copied(tmp_path):
    from rlmr.training.learner import _copy_tokenizer

    src, dst = tmp_path / "model", tmp_path / "policy"
    src.mkdir()
    dst.mkdir()
    wanted = [
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "vocab.json",
        "merges.txt",
        "chat_template.jinja",
        "generation_config.json",
    ]
    for i, name in enumerate([*wanted, "config.json", "model.safetensors", "README.md"]):
        (src / name).write_text(f"file {i}")
    _copy_tokenizer(str(src), dst)
    assert sorted(p.name for p in dst.iterdir()) == sorted(wanted)
    assert all((dst / n).read_text() == (src / n).read_text() for n in wanted)


def test_counts_and_barriers_use_the_process_group_only_with_several_ranks(monkeypatch):
    """One rank: no collective, and the count stays exact beyond float32 (2**24 + 1). Two ranks:
    an all-reduce in float64 (faked here: it doubles) and a barrier."""
    import torch.distributed as dist

    from rlmr.training.learner import PolicyLearner, RankInfo

    calls = []

    def all_reduce(t):
        calls.append(("all_reduce", t.dtype))
        t.mul_(2)

    monkeypatch.setattr(dist, "all_reduce", all_reduce)
    monkeypatch.setattr(dist, "barrier", lambda: calls.append(("barrier",)))
    learner = object.__new__(PolicyLearner)
    learner.device = torch.device("cpu")
    count = float(2**24 + 1)
    for initialized, world, reduced in ((True, 1, count), (False, 2, count), (True, 2, 2 * count)):
        monkeypatch.setattr(dist, "is_initialized", lambda i=initialized: i)
        learner.rank = RankInfo(0, world, "cpu")
        calls.clear()
        assert learner._all_reduce_sum(count) == reduced
        learner._barrier()
        collective = initialized and world > 1
        assert calls == ([("all_reduce", torch.float64), ("barrier",)] if collective else [])


@pytest.fixture
def recorded_deepspeed(monkeypatch):
    """DeepSpeed replaced by a recorder, and `torch.manual_seed` watched: the constructor runs
    without a process group, for any rank, world size or device."""
    import sys
    import types

    seen: dict = {"seeds": []}
    module = types.ModuleType("deepspeed")
    module.init_distributed = lambda **kwargs: seen.update(init=kwargs)

    def initialize(model, optimizer, lr_scheduler, config):
        seen.update(model=model, config=config)
        return types.SimpleNamespace(module=model), optimizer, None, lr_scheduler

    module.initialize = initialize
    monkeypatch.setitem(sys.modules, "deepspeed", module)
    real_seed = torch.manual_seed
    monkeypatch.setattr(torch, "manual_seed", lambda s: seen["seeds"].append(s) or real_seed(s))
    with torch.random.fork_rng(devices=[]):
        yield seen


def test_the_constructor_wires_device_backend_seed_and_batch_split(
    model_dir, recorded_deepspeed, monkeypatch
):
    from rlmr.training.learner import PolicyLearner, RankInfo

    seen = recorded_deepspeed
    cfg = LearnerConfig(micro_batch_size=2)
    learner = PolicyLearner(
        model_dir, "float32", cfg, AlgoConfig(), RankInfo(1, 2, "cuda"), 8, seed=7
    )
    assert learner.device == torch.device("cuda", 0)
    assert seen["init"] == {"dist_backend": "nccl", "auto_mpi_discovery": False}
    assert seen["seeds"] == [7 + 1]  # seed + rank
    assert (learner.per_update, learner.grad_accum) == (4, 2)
    assert type(learner.per_update) is int and type(learner.grad_accum) is int
    assert seen["config"]["train_batch_size"] == 2 * 2 * 2
    model = seen["model"]
    assert model.config.use_cache is False and not model.is_activation_checkpointing
    assert learner.save_optimizer is True and learner.updates == 0  # the defaults

    # Non-reentrant checkpointing is asked for by name (older transformers default to reentrant),
    # recomputing under the forward's settings (`rlmr.training.recompute`).
    from transformers import PreTrainedModel

    from rlmr.training.recompute import checkpoint_contexts

    asked = []
    enable = PreTrainedModel.activation_checkpointing_enable

    def recorded(model, *args, **kwargs):
        asked.append((args, kwargs))
        return enable(model, *args, **kwargs)

    monkeypatch.setattr(PreTrainedModel, "activation_checkpointing_enable", recorded)
    seen["seeds"].clear()
    learner = PolicyLearner(
        model_dir,
        "float32",
        LearnerConfig(updates_per_step=2, micro_batch_size=1),
        AlgoConfig(),
        RankInfo(0, 1, "cpu"),
        4,
        gradient_checkpointing=True,
    )
    assert learner.device == torch.device("cpu") and seen["init"]["dist_backend"] == "gloo"
    assert seen["seeds"] == [0]  # the default seed
    assert (learner.per_update, learner.grad_accum) == (2, 2)
    layer = seen["model"].model.layers[0]
    assert seen["model"].is_activation_checkpointing
    kwargs = {"use_reentrant": False, "context_fn": checkpoint_contexts}
    assert layer._gradient_checkpointing_func.keywords == kwargs
    assert asked == [((), {"activation_checkpointing_kwargs": kwargs})]


@pytest.mark.parametrize(
    ("samples", "world", "updates", "micro"),
    [
        (5, 2, 1, 1),  # ranks do not divide the samples
        (8, 1, 3, 1),  # updates do not divide a rank's samples
        (8, 1, 2, 3),  # micro-batches do not divide an update's samples
    ],
)
def test_a_batch_that_does_not_split_is_refused(
    model_dir, recorded_deepspeed, samples, world, updates, micro
):
    from rlmr.training.learner import PolicyLearner, RankInfo

    cfg = LearnerConfig(updates_per_step=updates, micro_batch_size=micro)
    message = (
        f"^learner.micro_batch_size: {samples} samples per step do not split into {world} ranks "
        f"x {updates} updates x micro-batches of {micro}$"
    )
    with pytest.raises(ValueError, match=message):
        PolicyLearner(model_dir, "float32", cfg, AlgoConfig(), RankInfo(0, world, "cpu"), samples)


@pytest.mark.parametrize("zero", [0, 3])
def test_the_exported_weights_carry_persistent_buffers_and_not_the_others(model_dir, zero):
    """What rank 0 exports for the rollout engines: every parameter and every buffer a checkpoint
    holds (some models keep persistent buffers), never the non-persistent ones (rotary inv_freq)."""
    learner = make_learner(model_dir, zero=zero)
    module = learner.engine.module
    module.register_buffer("extra_scale", torch.tensor([2.0, 3.0]), persistent=True)
    module.register_buffer("scratch", torch.tensor([7.0]), persistent=False)
    state = learner.full_state_dict()
    assert torch.equal(state["extra_scale"], torch.tensor([2.0, 3.0]))
    assert "scratch" not in state
    assert state["extra_scale"].data_ptr() != module.extra_scale.data_ptr()  # a copy
    names = {n for n, _ in module.named_parameters()}
    assert names <= set(state)
    # For the weight export (copied into Ray's store at once): the live CPU tensors, no copy, where
    # the weights are whole; gathered ZeRO-3 weights are released after the gather: still copies.
    live = learner.full_state_dict(copy=False)
    assert live.keys() == state.keys()
    assert all(torch.equal(live[k], state[k]) for k in state)
    shared = {k for k, p in module.named_parameters() if live[k].data_ptr() == p.data_ptr()}
    assert shared == (names if zero == 0 else set())


def test_the_optimizer_is_pytorchs_fused_adamw(model_dir):
    """One pass per tensor (bench/README.md: 3.5-4x faster than the default on CPU)."""
    learner = make_learner(model_dir)
    assert isinstance(learner.optimizer, torch.optim.AdamW)
    assert learner.optimizer.defaults["fused"] is True


def test_the_behaviour_weight_corrects_each_token_toward_the_rollout_policy(model_dir):
    """`algo.behaviour_weight_cap`: each token's loss is weighted by min(exp(logp_prox -
    logp_rollout), C). Rollout log-probs 1 nat below the learner's on even positions (weight e,
    truncated at 1.5) and 0.5 above on odd ones (weight 0.61): statistics and gradient are the
    hand-computed ones, and differ from the uncorrected update's."""
    tb = _masked_prompt_batch()
    learner = make_learner(model_dir, micro=2, algo=AlgoConfig(behaviour_weight_cap=1.5))
    offsets = torch.tensor([1.0 if t % 2 == 0 else -0.5 for t in range(tb.input_ids.shape[1] - 1)])
    rollout = (learner.logprobs(tb) - offsets) * tb.response_mask
    tb = dataclasses.replace(tb, rollout_logprobs=rollout)
    settings = LossSettings(behaviour_cap=1.5)
    stats = learner.update(tb)
    expected = _expected_stats(model_dir, tb, micro=2, settings=settings)
    for k in ("behaviour_weight_mean", "behaviour_weight_max", "behaviour_truncated_frac"):
        assert stats[k] == pytest.approx(expected[k], rel=1e-5), k
    assert stats["behaviour_weight_max"] == pytest.approx(1.5)
    assert 0.3 < stats["behaviour_truncated_frac"] < 0.7
    assert stats["pg_loss"] == pytest.approx(expected["pg_loss"], rel=1e-5, abs=1e-7)
    corrected = _manual_gradient_norm(model_dir, tb, settings)
    assert stats["grad_norm"] == pytest.approx(corrected, rel=1e-5)
    assert corrected != pytest.approx(_manual_gradient_norm(model_dir, tb), rel=1e-2)


@pytest.mark.parametrize("flattened", [True, False], ids=["flattened", "kv-cache"])
def test_rows_sharing_a_prompt_run_it_once_with_the_same_numbers_and_gradients(
    model_dir, flattened, monkeypatch
):
    """The n samples of a prompt: the prompt goes through the model once per distinct prompt (not
    once per row), and the log-probs, the entropy and every gradient equal the whole computation;
    on both paths: the flattened forward (`rlmr.training.shared_prompt`, a Llama model) and the
    KV cache (any other model: here the Llama model with the flattened path switched off). For
    the cache path, rows padded inside the prompt part, all-distinct rows and gradient
    checkpointing (which builds no cache) compute every row whole."""
    from transformers import AutoModelForCausalLM

    import rlmr.training.shared_prompt as shared_prompt
    from rlmr.training.logprobs import sequence_token_logprobs, shared_prompt_cache

    if not flattened:
        monkeypatch.setattr(shared_prompt, "PACKABLE_MODEL_TYPES", frozenset())

    model = AutoModelForCausalLM.from_pretrained(
        model_dir, dtype=torch.float32, local_files_only=True
    )
    other = (8, 3, 21, 30, 11)
    ids = torch.tensor(
        [
            [*PROMPT, 40, 41, 42, 43],
            [*other, 50, 51, 0, 0],
            [*PROMPT, 60, 61, 62, 0],
            [*PROMPT, 70, 71, 72, 73],
            [*other, 80, 81, 82, 83],
        ]
    )
    attention = (ids != 0).long()
    first = len(PROMPT) - 1
    seen, head = [], []
    hook = model.model.embed_tokens.register_forward_hook(lambda m, i, o: seen.append(i[0].numel()))
    head_hook = model.lm_head.register_forward_hook(lambda m, i, o: head.append(i[0].shape[:-1]))

    def run(shared: bool):
        model.zero_grad()
        seen.clear()
        head.clear()
        if shared:
            logp, ent = sequence_token_logprobs(
                model, ids, attention, with_entropy=True, first_target=first
            )
        else:  # the whole computation, every row and column
            logp, ent = sequence_token_logprobs(model, ids, attention, with_entropy=True)
            logp = torch.nn.functional.pad(logp[:, first:], (first, 0))
            ent = torch.nn.functional.pad(ent[:, first:], (first, 0))
        (logp * torch.arange(1, logp.shape[1] + 1)).sum().backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters()}
        return logp.detach(), ent, grads, list(seen)

    whole, whole_ent, whole_grads, whole_seen = run(False)
    part, part_ent, part_grads, part_seen = run(True)
    part_head = list(head)
    hook.remove()
    head_hook.remove()
    assert whole_seen == [ids.numel()]
    rest = len(ids) * (ids.shape[1] - first)
    if flattened:
        # two distinct prompts of `first` tokens once each and every row from column `first` on,
        # in one forward; the output layer on the rows' part alone
        assert part_seen == [2 * first + rest]
        assert part_head == [(1, rest)]
    else:
        # the prompts first, then the rows; the output layer on one position of each prompt
        # (never read), then on the rest
        assert part_seen == [2 * first, rest]
        assert part_head == [(2, 1), (len(ids), ids.shape[1] - first)]
    assert torch.allclose(part, whole, atol=1e-5) and torch.allclose(part_ent, whole_ent, atol=1e-5)
    assert torch.equal(part[:, :first], torch.zeros(len(ids), first))
    for name, grad in whole_grads.items():
        assert torch.allclose(part_grads[name], grad, atol=1e-5, rtol=1e-4), name

    assert shared_prompt_cache(model, ids, attention, first)
    assert shared_prompt_cache(model, ids, attention, 1)  # one shared token is enough
    assert not shared_prompt_cache(model, ids, attention, 0)
    assert not shared_prompt_cache(model, ids[:2], attention[:2], first)  # no prompt repeats
    padded = attention.clone()
    padded[2, 0] = 0
    assert not shared_prompt_cache(model, ids, padded, first)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    assert not shared_prompt_cache(model, ids, attention, first)


def test_a_learner_runs_rows_sharing_a_prompt_in_one_flattened_forward(model_dir):
    """Through the DeepSpeed engine (whose own `config` is DeepSpeed's, not the model's): the
    update's forward is one flattened sequence, the prompt once and every row after it."""
    from rlmr.training import shared_prompt

    learner = make_learner(model_dir)
    tb = batch()
    assert shared_prompt.packable(learner.engine)
    seen = []
    embed = learner.engine.module.model.embed_tokens
    hook = embed.register_forward_hook(lambda m, i, o: seen.append(tuple(i[0].shape)))
    learner.update(tb)
    hook.remove()
    first = len(PROMPT) - 1
    assert seen == [(1, first + len(RESPONSES) * (tb.input_ids.shape[1] - first))]


def test_a_learner_with_gradient_checkpointing_computes_every_row_whole(model_dir):
    """Checkpointed layers build no KV cache, so the shared-prompt path is off; the DeepSpeed
    engine the learner holds passes the model's `is_gradient_checkpointing` on."""
    from rlmr.training.logprobs import shared_prompt_cache

    learner = make_learner(model_dir)
    tb = batch()
    first = len(PROMPT) - 1
    assert shared_prompt_cache(learner.engine, tb.input_ids, tb.attention_mask, first)
    learner.engine.module.gradient_checkpointing_enable(
        gradient_checkpointing_kwargs={"use_reentrant": False}
    )
    assert not shared_prompt_cache(learner.engine, tb.input_ids, tb.attention_mask, first)

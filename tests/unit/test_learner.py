"""The policy learner on a tiny model: real DeepSpeed (gloo, one rank), on CPU, no Ray.

Each test would fail if the training path were broken in a way the other
tests cannot see: a negated advantage (log-probs move the wrong way), a mask
that lets prompt or padding tokens in (the update changes with them), a wrong
gradient-accumulation normaliser (the gradient changes with the micro-batch
size, and differs from the token mean computed here by hand), a KL term with
the wrong sign (log-probs move away from the reference).
"""

from __future__ import annotations

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
    model_dir, micro=4, updates=1, lr=1e-2, algo=None, grad_clip=1e6, zero=0, save_optimizer=True
):
    from rlmr.training.learner import PolicyLearner, RankInfo

    learner_cfg = LearnerConfig(
        lr=lr,
        micro_batch_size=micro,
        updates_per_step=updates,
        grad_clip=grad_clip,
        backend="gloo",
        zero_stage=zero,
    )
    return PolicyLearner(
        model_dir,
        "float32",
        learner_cfg,
        algo or AlgoConfig(),
        RankInfo(0, 1, "cpu"),
        samples_per_step=len(RESPONSES),
        seed=0,
        save_optimizer=save_optimizer,
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

    from rlmr.training.learner import sequence_token_logprobs

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

    learner = make_learner(model_dir, zero=zero)
    learner.update(batch())
    exported = learner.full_state_dict()
    learner.save(str(tmp_path / "ck"), {"step": 7})
    policy = tmp_path / "ck" / "policy"
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
    AutoTokenizer.from_pretrained(str(policy))
    reloaded = AutoModelForCausalLM.from_pretrained(str(policy), local_files_only=True)
    assert all(torch.equal(reloaded.state_dict()[k], exported[k]) for k in exported)

    # A fresh learner restores weights, optimizer and client state: the next update matches.
    other = make_learner(model_dir, zero=zero)
    assert other.load(str(tmp_path / "ck"))["step"] == 7
    restored = other.full_state_dict()
    assert all(torch.equal(restored[k], exported[k]) for k in exported)
    learner.update(batch())
    other.update(batch())
    after_a, after_b = learner.full_state_dict(), other.full_state_dict()
    assert all(torch.equal(after_a[k], after_b[k]) for k in after_a)


def test_without_optimizer_state_only_the_policy_is_saved_and_resume_is_refused(
    model_dir, tmp_path
):
    learner = make_learner(model_dir, save_optimizer=False)
    learner.save(str(tmp_path / "ck"))
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["policy"]
    with pytest.raises(FileNotFoundError, match="no optimizer/ state to resume from"):
        make_learner(model_dir).load(str(tmp_path / "ck"))

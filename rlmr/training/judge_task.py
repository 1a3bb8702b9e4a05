"""Training the judge itself with GRPO (RLCS): labelled pairs as prompts, judgments as samples.

Each preference pair becomes two prompts, one per presentation order (ids
`<pair>/forward`, chosen shown first, and `<pair>/backward`), so the judge sees
both orders over an epoch and the order of each prompt is recorded. A prompt is
the judge's own pairwise prompt, already formatted (`PromptRow.text`), and its
`label` says where the better response is (`first` or `second`).

The `n` samples of a prompt are judgments: an analysis ending in
`Verdict: <label>` with reasoning, the verdict token alone without. Each is
read by `read_judgments` on the policy's engine: which label it gave (none when
no label can be read), and the policy's distribution over the two label tokens
at the verdict position. The reward is +1 for agreeing with the label and -1
otherwise (-1 with no verdict), shaped by `rlmr.core.shaping.entropy_shaped_rewards`
with the entropy of that distribution (`token`) or of the group's vote split
(`votes`); advantages are the usual group advantages.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch

from rlmr.core.records import Group, PromptRow
from rlmr.core.shaping import entropy_shaped_rewards, vote_entropy
from rlmr.data.pairs import PreferencePair
from rlmr.judge.evaluation import expected_calibration_error, judge_pairs
from rlmr.judge.judge import GenerativeJudge, JudgeSettings
from rlmr.judge.prompts import PromptBuilder
from rlmr.judge.types import PairJudgment
from rlmr.judge.verdict import VerdictLabels, binary_entropy, verdict_probability


def judge_rows(pairs: Sequence[PreferencePair], builder: PromptBuilder) -> list[PromptRow]:
    """Two prompts per pair, one per order, each knowing where the better response is."""
    rows = []
    for pair in pairs:
        for order, first, second, label in (
            ("forward", pair.chosen, pair.rejected, "first"),
            ("backward", pair.rejected, pair.chosen, "second"),
        ):
            prompt = builder.pairwise(pair.prompt, first, second, pair.context)
            rows.append(
                PromptRow(
                    id=f"{pair.id}/{order}",
                    prompt=pair.prompt,
                    context=pair.context,
                    text=prompt.text,
                    label=label,
                )
            )
    return rows


@dataclass(frozen=True)
class Judgment:
    """What one sampled judgment said: the side it picked (None: no readable verdict) and the
    policy's probability of the first label at the verdict position."""

    side: str | None
    p_first: float

    @property
    def entropy(self) -> float:
        return binary_entropy(self.p_first)


def _verdict_at(text: str, labels: VerdictLabels) -> tuple[str | None, int]:
    """The side named by the last verdict in a reasoning judgment, and where its label starts."""
    cue = labels.cue.rstrip()
    found = None
    for m in re.finditer(re.escape(cue) + r"\s*(\S+)", text):
        found = m
    if found is None:
        return None, len(text)
    label = found.group(1).strip("*.,;:!?\"'")
    side = "first" if label == labels.first else "second" if label == labels.second else None
    return side, found.start(1)


def read_judgments(
    engine, groups: Sequence[Group], labels: VerdictLabels, reasoning: bool
) -> list[list[Judgment]]:
    """Per group, per sample: the verdict it gave and the label distribution where it gave it."""
    prefixes, sides = [], []
    for group in groups:
        for response in group.responses:
            if reasoning:
                side, start = _verdict_at(response.text, labels)
                head = response.text[:start].rstrip() if side else response.text.rstrip()
                prefix = group.prompt_text + head.rsplit(labels.cue.rstrip(), 1)[0].rstrip()
                prefix += "\n" + labels.cue
            else:  # the response is the verdict token itself, read right after the cue
                token = response.token_ids[0] if response.token_ids else None
                side = (
                    "first"
                    if token == labels.first_id
                    else "second"
                    if token == labels.second_id
                    else None
                )
                prefix = group.prompt_text
            prefixes.append(prefix)
            sides.append(side)
    rows = engine.next_token_logprobs(prefixes, [labels.first_id, labels.second_id])
    out, k = [], 0
    for group in groups:
        row = []
        for _ in group.responses:
            p_first, _mass = verdict_probability(*rows[k])
            row.append(Judgment(sides[k], p_first))
            k += 1
        out.append(row)
    return out


def judge_rewards(
    groups: Sequence[Group], judgments: Sequence[Sequence[Judgment]], floor: float, entropy: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`[groups, n]` shaped rewards, correct flags, and the entropies used (bits)."""
    correct = torch.tensor(
        [[j.side == g.row.label for j in js] for g, js in zip(groups, judgments)]
    )
    valid = torch.tensor([[j.side is not None for j in js] for js in judgments])
    if entropy == "votes":
        # The share of the group voting "first": its binary entropy is the vote-split entropy.
        first = torch.tensor([[j.side == "first" for j in js] for js in judgments])
        p = first.to(torch.float64).mean(dim=1, keepdim=True).expand(first.shape)
        h = vote_entropy(first).to(torch.float64)
    else:
        p = torch.tensor([[j.p_first for j in js] for js in judgments], dtype=torch.float64)
        h = torch.tensor([[j.entropy for j in js] for js in judgments], dtype=torch.float64)
    return entropy_shaped_rewards(correct, p, floor, valid=valid), correct, h


def judge_metrics(
    groups: Sequence[Group],
    judgments: Sequence[Sequence[Judgment]],
    rewards: torch.Tensor,
    correct: torch.Tensor,
    entropies: torch.Tensor,
) -> dict:
    """Agreement with the labels, verdicts read, entropy, shaped reward, confident errors and
    calibration (ECE of the verdict probabilities). Position consistency needs both orders of a
    pair, which a training step does not show: the held-out evaluation measures it."""
    valid = torch.tensor([[j.side is not None for j in js] for js in judgments])
    wrong = ~correct & valid
    confident_wrong = wrong & (entropies < 0.5)
    n = correct.numel()
    p_label = _p_label(groups, judgments)
    return {
        "judge/agreement": float(correct.float().mean()),
        "judge/verdict_rate": float(valid.float().mean()),
        "judge/entropy_mean": float(entropies.float().mean()),
        "judge/shaped_reward_mean": float(rewards.float().mean()),
        "judge/confident_error_rate": float(confident_wrong.sum()) / n,
        "judge/first_rate": sum(j.side == "first" for js in judgments for j in js) / n,
        "judge/p_label_mean": sum(p_label) / len(p_label) if p_label else math.nan,
        "judge/ece": expected_calibration_error(p_label),
    }


def _p_label(groups, judgments) -> list[float]:
    """The probability each judgment put on the right label (a smooth view of agreement)."""
    return [
        j.p_first if g.row.label == "first" else 1.0 - j.p_first
        for g, js in zip(groups, judgments)
        for j in js
    ]


def judge_settings(judge) -> JudgeSettings:
    """How the judge being trained judges held-out pairs: greedy, both orders, its own budget."""
    return JudgeSettings(
        reasoning=judge.reasoning,
        swap=True,
        max_analysis_tokens=judge.max_analysis_tokens,
        max_judge_len=judge.max_judge_len,
        temperature=0.0,
    )


def judge_held_out(engine, pairs: Sequence[PreferencePair], judge) -> list[PairJudgment]:
    """The current policy, as a judge, on held-out pairs (the chosen response as `a`)."""
    return judge_pairs(GenerativeJudge(engine, judge_settings(judge)), pairs)


def judge_training_step(cfg, services, sampler, step: int) -> tuple[dict, list[dict]]:
    """One GRPO step of the judge: sample judgments, read them, shape, update, sync."""
    from rlmr.core.algo import group_advantages
    from rlmr.core.records import TokenBatch, TrainBatch
    from rlmr.training.metrics import PhaseTimer
    from rlmr.training.rollout import sampling_params

    timer = PhaseTimer()
    params = sampling_params(cfg.rollout, seed=cfg.trainer.seed * 1_000_003 + step)
    params = replace(params, max_new_tokens=cfg.judge.judgment_tokens)
    with timer("rollout"):
        groups = services.sample(sampler.take(cfg.rollout.prompts_per_step), params)
    with timer("reward"):
        judgments = services.read_judgments(groups)
    shaping = cfg.judge.shaping
    rewards, correct, entropies = judge_rewards(groups, judgments, shaping.floor, shaping.entropy)
    advantages = group_advantages(rewards, method=cfg.algo.advantage, eps=cfg.algo.eps)
    batch = TrainBatch.of(TokenBatch.from_groups(groups, services.pad_token_id), advantages)
    with timer("update"):
        stats = services.update_policy(batch)
    with timer("sync"):
        services.sync_weights()
    metrics = judge_metrics(groups, judgments, rewards, correct, entropies)
    lengths = [len(r.token_ids) for g in groups for r in g.responses]
    metrics.update(
        {
            "reward_mean": float(rewards.mean()),
            "adv_mean": float(advantages.mean()),
            "adv_std": float(advantages.std()) if advantages.numel() > 1 else 0.0,
            "frac_zero_std": float((rewards == rewards[:, :1]).all(dim=1).float().mean()),
            "response_len_mean": sum(lengths) / len(lengths),
            **stats,
            **timer.times,
            "time/step_s": timer.elapsed(),
        }
    )
    samples = [
        {
            "prompt_id": g.row.id,
            "label": g.row.label,
            "judgment": r.text,
            "verdict": j.side,
            "p_first": j.p_first,
            "reward": float(rewards[gi, ri]),
            "advantage": float(advantages[gi, ri]),
        }
        for gi, (g, js) in enumerate(zip(groups, judgments))
        for ri, (r, j) in enumerate(zip(g.responses, js))
    ][: cfg.logging.samples_per_step]
    return metrics, samples


def judge_evaluate(cfg, services, pairs: Sequence[PreferencePair], step: int = 0) -> dict:
    """The judge on held-out pairs, both orders: agreement (also per family), position
    consistency, calibration, position bias."""
    from rlmr.judge.evaluation import pair_report
    from rlmr.training.metrics import PhaseTimer

    timer = PhaseTimer()
    report = pair_report(pairs, services.judge_held_out(list(pairs)))
    out = {
        "eval/agreement": report.agreement,
        "eval/ece": report.ece,
        "eval/first_position_rate": report.first_position_rate,
        "eval/verdict_mass": report.verdict_mass,
        "eval/pairs": report.pairs,
    }
    if report.position_consistency is not None:
        out["eval/position_consistency"] = report.position_consistency
    out.update({f"eval/agreement/{kind}": v for kind, v in report.by_kind.items()})
    out["time/eval_s"] = timer.elapsed()
    return out


def judge_prompt_sets(cfg) -> tuple[list[PromptRow], list[PreferencePair]]:
    """`task: judge`: training prompts (each pair in both orders, as the judge's prompts) and the
    held-out pairs, checked before any model starts."""
    from rlmr.data.pairs import load_pairs
    from rlmr.data.prompts import check_prompt_rows
    from rlmr.engine.loading import load_tokenizer

    tokenizer = load_tokenizer(cfg.model.source)
    builder = PromptBuilder.for_judge(tokenizer, cfg.judge, chat_template=cfg.model.chat_template)
    rows = judge_rows(load_pairs(cfg.data.train), builder)
    check_prompt_rows(
        rows,
        cfg.data.train,
        lambda r: len(tokenizer(r.text, add_special_tokens=False)["input_ids"]),
        cfg.data.max_prompt_tokens,
    )
    return rows, load_pairs(cfg.data.eval) if cfg.data.eval else []

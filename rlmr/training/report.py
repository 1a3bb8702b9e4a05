"""`rlmr report RUN_DIR [RUN_DIR ...]`: curves and a Markdown summary of one or more runs.

    rlmr report runs/smollm2-cpu runs/smollm2-writing-only -o report/

writes into the output folder
- `curves.png`: reward, writing score, constraint pass rates (train and held-out), response
  length (mean and max), KL, entropy, clip fraction, zero-variance groups, gradient norm, the
  judge's own figures when it was trained: every run overlaid, panels nobody logged left out;
- `phases.png`: seconds per step in each phase (rollout, reward, reference, update, sync, eval),
  one panel per run;
- `report.md`: the runs' final and best figures, the config keys on which they differ, and a few
  samples from the first and the last logged step of each run.

It reads what `rlmr train` leaves in a run directory (`metrics.jsonl`, `config.yaml`,
`samples.jsonl`), so it works on finished runs, on runs still going, and on runs copied from a
cluster.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from rlmr.data.jsonl import read_jsonl
from rlmr.training.plots import curves_figure

PHASES = ("rollout", "reward", "reference", "update", "sync", "eval")
# The figures of the summary table: (metric, heading, what "best" means: max, min or None).
FIGURES = (
    ("eval/pass_rate", "held-out pass rate", "max"),
    ("pass_rate", "train pass rate", None),
    ("writing_mean", "writing score", None),
    ("reward_mean", "reward", None),
    ("response_len_mean", "length (tokens)", None),
    ("kl", "KL", None),
    ("eval/agreement", "judge agreement (held-out)", "max"),
    ("eval/ifeval/prompt_strict", "IFEval prompt strict", "max"),
)
SAMPLES_PER_STEP = 2
SAMPLE_CHARS = 400


class ReportError(ValueError):
    """A run directory `rlmr report` cannot read; the message names the file."""


@dataclass
class Run:
    label: str
    path: Path
    metrics: list[dict]
    config: dict = field(default_factory=dict)
    samples: list[dict] = field(default_factory=list)


def load_run(path: Path, label: str | None = None) -> Run:
    """A run directory, or a metrics file alone (`NAME.metrics.jsonl`: curves and figures, no
    config or samples)."""
    path = Path(path)
    alone = path.is_file()
    metrics_file = path if alone else path / "metrics.jsonl"
    if not metrics_file.is_file():
        raise ReportError(f"{metrics_file}: not found (is {path} a run directory?)")
    try:
        metrics = [r for r in read_jsonl(metrics_file) if isinstance(r.get("step"), int)]
    except ValueError as err:
        raise ReportError(f"{metrics_file}: {err}") from err
    if not metrics:
        raise ReportError(f"{metrics_file}: no metric rows yet")
    if alone:
        return Run(
            label or path.name.removesuffix(".jsonl").removesuffix(".metrics"), path, metrics
        )
    config = {}
    if (path / "config.yaml").is_file():
        import yaml

        try:
            config = yaml.safe_load((path / "config.yaml").read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as err:
            raise ReportError(f"{path / 'config.yaml'}: not valid YAML: {err}") from err
    samples = []
    if (path / "samples.jsonl").is_file():
        try:
            samples = read_jsonl(path / "samples.jsonl")
        except ValueError as err:
            raise ReportError(f"{path / 'samples.jsonl'}: {err}") from err
    return Run(label or path.name, path, metrics, config, samples)


def flatten(tree, prefix: str = "") -> dict:
    """`{"a": {"b": 1}}` -> `{"a.b": 1}` (lists stay values)."""
    if not isinstance(tree, dict):
        return {prefix: tree}
    out = {}
    for k, v in tree.items():
        out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def config_differences(runs: list[Run]) -> dict[str, list]:
    """The dotted config keys whose values are not the same in every run, each run's value in
    run order (None where a run does not have the key). Run names and output folders are left
    out: they always differ."""
    flat = [flatten(r.config) for r in runs]
    keys = sorted(set().union(*flat))
    skip = ("logging.run_name", "logging.output_dir")
    return {
        k: [f.get(k) for f in flat]
        for k in keys
        if k not in skip and len({json.dumps(f.get(k), sort_keys=True) for f in flat}) > 1
    }


def final_figures(run: Run) -> dict[str, tuple[float | None, float | None]]:
    """`metric -> (last logged value, best value)` for the summary table."""
    out = {}
    for key, _, best in FIGURES:
        values = [(r["step"], r[key]) for r in run.metrics if r.get(key) is not None]
        if not values:
            continue
        ys = [v for _, v in values]
        top = max(ys) if best == "max" else min(ys) if best == "min" else None
        out[key] = (ys[-1], top)
    return out


def phases_figure(runs: list[Run]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(runs), figsize=(5.0 * len(runs), 3.4), squeeze=False)
    for ax, run in zip(axes.flat, runs):
        rows = [r for r in run.metrics if r["step"] > 0]
        steps = [r["step"] for r in rows]
        bottom = [0.0] * len(rows)
        for i, phase in enumerate(PHASES):
            ys = [float(r.get(f"time/{phase}_s") or 0.0) for r in rows]
            if not any(ys):
                continue
            ax.bar(steps, ys, bottom=bottom, color=f"C{i}", label=phase, width=0.9)
            bottom = [b + y for b, y in zip(bottom, ys)]
        ax.set_title(f"{run.label}: seconds per step", fontsize=10)
        ax.set_xlabel("step", fontsize=8)
        ax.grid(alpha=0.3, axis="y")
        if steps:
            ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def markdown(runs: list[Run], images: list[str]) -> str:
    lines = ["# RLMR report", ""]
    lines += [f"Runs: {', '.join(f'`{r.label}` ({r.path})' for r in runs)}.", ""]
    lines += [f"![{Path(i).stem}]({i})" for i in images] + [""]
    headings = [(k, h, best) for k, h, best in FIGURES if any(k in final_figures(r) for r in runs)]
    lines += ["## Final figures", ""]
    lines.append(
        "| run | last step | "
        + " | ".join(f"{h} (last{', best' if b else ''})" for _, h, b in headings)
        + " |"
    )
    lines.append("|---" * (2 + len(headings)) + "|")
    for r in runs:
        figs = final_figures(r)
        cells = []
        for k, _, best in headings:
            last, top = figs.get(k, (None, None))
            cells.append(_fmt(last) + (f" ({_fmt(top)})" if best else ""))
        lines.append(f"| {r.label} | {r.metrics[-1]['step']} | " + " | ".join(cells) + " |")
    lines.append("")
    if len(runs) > 1:
        diff = config_differences(runs)
        lines += ["## Config differences", ""]
        if diff:
            lines.append("| key | " + " | ".join(r.label for r in runs) + " |")
            lines.append("|---" * (1 + len(runs)) + "|")
            for k, values in diff.items():
                lines.append(f"| `{k}` | " + " | ".join(_cell(_fmt(v)) for v in values) + " |")
        else:
            lines.append("The runs used the same config.")
        lines.append("")
    lines += ["## Samples", ""]
    for r in runs:
        steps = sorted({s["step"] for s in r.samples})
        if not steps:
            lines += [f"`{r.label}`: no samples.jsonl.", ""]
            continue
        for step in dict.fromkeys([steps[0], steps[-1]]):
            lines += [f"### `{r.label}`, step {step}", ""]
            for s in [s for s in r.samples if s["step"] == step][:SAMPLES_PER_STEP]:
                text = s.get("response", "")
                cut = text[:SAMPLE_CHARS] + (" [...]" if len(text) > SAMPLE_CHARS else "")
                failed = ", ".join(s.get("failed_constraints") or []) or "none"
                lines += [
                    f"- prompt `{s.get('prompt_id')}`: reward {_fmt(s.get('reward'))}, "
                    f"writing {_fmt(s.get('writing'))}, passed {s.get('passed')} "
                    f"(failed: {failed}), {s.get('tokens')} tokens",
                    "",
                    "  > " + _cell(cut),
                    "",
                ]
    return "\n".join(lines).rstrip() + "\n"


def write_report(runs: list[Run], out: Path) -> list[Path]:
    """Writes curves.png, phases.png and report.md into `out`; returns their paths."""
    import matplotlib.pyplot as plt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    fig = curves_figure({r.label: r.metrics for r in runs})
    fig.savefig(out / "curves.png", dpi=110)
    plt.close(fig)
    written.append(out / "curves.png")
    fig = phases_figure(runs)
    fig.savefig(out / "phases.png", dpi=110)
    plt.close(fig)
    written.append(out / "phases.png")
    (out / "report.md").write_text(markdown(runs, ["curves.png", "phases.png"]), encoding="utf-8")
    written.append(out / "report.md")
    return written

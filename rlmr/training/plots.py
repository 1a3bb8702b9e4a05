"""Training curves from metrics.jsonl, drawn with matplotlib (headless).

    python -m rlmr.training.plots runs/smollm2-cpu/metrics.jsonl \
        [runs/other/metrics.jsonl ...] -o curves.png

With several runs the panels overlay them (e.g. RLMR's dynamic mixing beside
the `writing_only` baseline). Dense per-step series are drawn faint with a bold
8-step moving average; panels whose metric is all zeros are left out.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rlmr.data.jsonl import read_jsonl

PANELS = (
    ("eval/pass_rate", "held-out constraint pass rate"),
    ("pass_rate", "train pass rate"),
    ("writing_mean", "writing score (judge)"),
    ("reward_mean", "mixed reward"),
    ("response_len_mean", "response length (tokens)"),
    ("response_len_max", "longest response (tokens)"),
    ("eval/response_len_mean", "held-out response length"),
    # benchmark suites run during training (trainer.eval)
    ("eval/ifeval/prompt_strict", "IFEval prompt-level strict"),
    ("eval/ifeval/instruction_loose", "IFEval instruction-level loose"),
    ("eval/ifbench/prompt_strict", "IFBench prompt-level strict"),
    ("kl", "KL to reference"),
    ("entropy", "policy entropy"),
    ("clip_frac", "clip fraction"),
    ("frac_zero_std", "zero-variance groups"),
    ("grad_norm", "gradient norm"),
    # the judge task (RLCS)
    ("eval/agreement", "held-out judge agreement"),
    ("eval/position_consistency", "held-out position consistency"),
    ("eval/ece", "held-out calibration error (ECE)"),
    ("judge/agreement", "train judge agreement"),
    ("judge/shaped_reward_mean", "shaped judge reward"),
    ("judge/entropy_mean", "verdict entropy (bits)"),
)


def _series(rows: list[dict], key: str) -> tuple[list[int], list[float]]:
    pts = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
    return [p[0] for p in pts], [p[1] for p in pts]


def moving_average(ys: list[float], window: int) -> list[float]:
    """Trailing mean over up to `window` points (per-step metrics of small batches are noisy)."""
    out, total = [], 0.0
    for i, y in enumerate(ys):
        total += y
        if i >= window:
            total -= ys[i - window]
        out.append(total / min(i + 1, window))
    return out


def _has_signal(runs: dict, key: str) -> bool:
    """A panel is drawn when some run logged the metric with a non-zero value (KL with beta 0 is all
    zeros)."""
    return any(any(y != 0 for y in _series(rows, key)[1]) for rows in runs.values())


def plot_metrics(rows_or_runs, out: Path, title: str = "") -> Path:
    """`rows_or_runs`: metric rows of one run, or {label: rows} for an overlay; writes a PNG."""
    import matplotlib.pyplot as plt

    fig = curves_figure(rows_or_runs, title)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def curves_figure(rows_or_runs, title: str = ""):
    """The matplotlib figure: one panel per metric that some run logged with a non-zero value."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = rows_or_runs if isinstance(rows_or_runs, dict) else {title or "run": rows_or_runs}
    panels = [(k, t) for k, t in PANELS if _has_signal(runs, k)]
    cols = 3
    nrows = max(1, -(-len(panels) // cols))
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.0 * nrows), squeeze=False)
    for ax, (key, label) in zip(axes.flat, panels):
        for i, (name, rows) in enumerate(runs.items()):
            xs, ys = _series(rows, key)
            if not xs:
                continue
            color = f"C{i}"
            if len(xs) >= 20:  # dense per-step series: faint raw line, bold moving average
                ax.plot(xs, ys, color=color, alpha=0.25, linewidth=1)
                ax.plot(xs, moving_average(ys, 8), color=color, linewidth=2, label=name)
            else:
                ax.plot(xs, ys, color=color, marker="o", markersize=3, label=name)
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("step", fontsize=8)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    if len(runs) > 1 and panels:
        axes.flat[0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("metrics", nargs="+", type=Path, help="metrics.jsonl files (one per run)")
    p.add_argument("-o", "--out", type=Path, default=Path("curves.png"))
    p.add_argument(
        "--labels", nargs="*", help="legend labels, one per file (default: the run folder names)"
    )
    args = p.parse_args(argv)
    labels = args.labels or [m.parent.name for m in args.metrics]
    if len(labels) != len(args.metrics):
        p.error("--labels needs one label per metrics file")
    runs = {label: read_jsonl(m) for label, m in zip(labels, args.metrics)}
    print(plot_metrics(runs, args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

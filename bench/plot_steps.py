"""Where a step's time goes: one stacked bar per `bench/vs_trl.py` result (rlmr's phases),
with TRL's seconds per step measured in the same run beside each.

    python bench/plot_steps.py --out bench/results/perf/step-time.png \\
        "before=bench/results/perf/before-e07755c-4x4x64.json" \\
        "fp32=bench/results/perf/vs_trl-4x4x64-fp32.json" \\
        "int8 rollout=bench/results/perf/vs_trl-4x4x64-int8.json"

Each argument is `LABEL=PATH`, or `LABEL=PATH#NAME` for the rlmr run a result holds
under `variants` (`vs_trl.py --variant NAME=...`). Prints the figures it drew as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

PHASES = ("rollout", "reference", "update", "sync", "reward")
COLORS = {
    "rollout": "#4c72b0",
    "reference": "#8172b2",
    "update": "#dd8452",
    "sync": "#55a868",
    "reward": "#c44e52",
    "other": "#bbbbbb",
}


def read(spec: str) -> tuple[str, dict]:
    label, sep, path = spec.partition("=")
    if not sep or not label or not path:
        raise SystemExit(f"plot_steps: expected LABEL=PATH, got {spec!r}")
    path, _, variant = path.partition("#")
    try:
        data = json.loads(Path(path).read_text())
        rlmr = data["variants"][variant] if variant else data["rlmr"]
        phases = {k: float(rlmr["phases_s"][k]) for k in PHASES}
        step = float(rlmr["step_s"])
    except (OSError, ValueError, KeyError) as e:
        raise SystemExit(f"plot_steps: {path}: not a vs_trl.py result ({e})") from e
    work = data.get("work", {})
    shape = f"{work.get('prompts')}x{work.get('samples_per_prompt')}x{work.get('max_new_tokens')}"
    trl = data.get("trl", {}).get("step_s")
    return label, {
        "step_s": step,
        "phases_s": phases,
        "other_s": max(0.0, step - sum(phases.values())),
        "trl_step_s": trl,
        "shape": shape,
        "date": data.get("date"),
    }


def plot(rows: list[tuple[str, dict]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3.4 + 1.7 * len(rows), 4.4))
    x = range(len(rows))
    bottom = [0.0] * len(rows)
    for phase in (*PHASES, "other"):
        heights = [r["other_s"] if phase == "other" else r["phases_s"][phase] for _, r in rows]
        ax.bar(x, heights, 0.55, bottom=bottom, label=phase, color=COLORS[phase])
        bottom = [b + h for b, h in zip(bottom, heights)]
    for i, (_, r) in enumerate(rows):
        ax.text(
            i,
            r["step_s"] / 2,
            f"{r['step_s']:.1f} s",
            ha="center",
            fontsize=10,
            color="white",
            fontweight="bold",
        )
        if r["trl_step_s"]:
            ax.plot([i - 0.35, i + 0.35], [r["trl_step_s"]] * 2, color="black", ls="--", lw=1.2)
            label = f"TRL {r['trl_step_s']:.1f} s"
            ax.text(i, r["trl_step_s"] * 1.015, label, ha="center", va="bottom", fontsize=8)
    ax.set_xticks(list(x), [f"{label}\n{r['shape']}" for label, r in rows])
    ax.set_ylabel("seconds per step (median)")
    ax.set_title("rlmr train: where a step's time goes (dashed: TRL, same run)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_ylim(0, max(max(r["step_s"], r["trl_step_s"] or 0) for _, r in rows) * 1.18)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results", nargs="+", help="LABEL=PATH of a vs_trl.py JSON result")
    p.add_argument("--out", type=Path, required=True, help="PNG to write")
    args = p.parse_args(argv)
    rows = [read(spec) for spec in args.results]
    plot(rows, args.out)
    json.dump({label: r for label, r in rows} | {"plot": str(args.out)}, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()

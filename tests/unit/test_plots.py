"""Training curves: a PNG is written, per-step series are smoothed, empty panels are skipped."""

from __future__ import annotations

from rlmr.training.plots import _has_signal, curves_figure, main, moving_average, plot_metrics


def test_moving_average_is_a_trailing_mean():
    assert moving_average([1, 2, 3, 4], 2) == [1.0, 1.5, 2.5, 3.5]
    assert moving_average([5.0], 8) == [5.0]


def test_plot_overlays_runs_and_skips_all_zero_panels(tmp_path):
    rows = [{"step": s, "pass_rate": s / 30, "kl": 0.0, "eval/pass_rate": 0.2} for s in range(30)]
    runs = {"dynamic": rows, "writing_only": rows[:10]}
    assert not _has_signal(runs, "kl") and _has_signal(runs, "pass_rate")
    out = plot_metrics(runs, tmp_path / "c.png", title="t")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000
    fig = curves_figure(runs, title="t")
    drawn = [ax.get_title() for ax in fig.axes if ax.axison]
    assert drawn == ["held-out constraint pass rate", "train pass rate"]  # no all-zero KL panel
    assert [len(ax.get_lines()) for ax in fig.axes if ax.axison] == [3, 3]  # 30 rows: raw + mean


def test_cli_writes_an_overlay(tmp_path):
    import json

    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.jsonl").write_text(
            "".join(json.dumps({"step": s, "reward_mean": s * 0.1}) + "\n" for s in range(5))
        )
    assert (
        main(
            [
                str(tmp_path / "a" / "metrics.jsonl"),
                str(tmp_path / "b" / "metrics.jsonl"),
                "-o",
                str(tmp_path / "o.png"),
            ]
        )
        == 0
    )
    assert (tmp_path / "o.png").exists()


def test_a_judge_run_draws_the_judge_panels():
    rows = [
        {"step": s, "judge/agreement": 0.5 + s / 40, "eval/agreement": 0.5, "adv_std": 1.0}
        for s in range(4)
    ]
    drawn = [ax.get_title() for ax in curves_figure(rows).axes if ax.axison]
    assert drawn == ["held-out judge agreement", "train judge agreement"]

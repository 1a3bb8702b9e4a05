"""`rlmr report` on synthetic run directories: the PNGs are drawn, the summary holds each run's
final and best figures, the config keys that differ, and samples from the first and last step;
a folder that is not a run is named."""

from __future__ import annotations

import json

import yaml

from rlmr.cli import main


def _run_dir(root, name, pass_rates, strategy, samples=True):
    path = root / name
    path.mkdir(parents=True)
    # trainer.eval's IFEval figures at step 0 and the last step
    ifeval = {"eval/ifeval/prompt_strict": 0.2, "eval/ifeval/instruction_loose": 0.3}
    rows = [{"step": 0, "eval/pass_rate": pass_rates[0], **ifeval}]
    for step, rate in enumerate(pass_rates[1:], start=1):
        rows.append(
            {
                "step": step,
                "pass_rate": rate,
                "eval/pass_rate": rate,
                "writing_mean": 0.5 + 0.01 * step,
                "reward_mean": rate - 0.5,
                "response_len_mean": 40.0 + step,
                "response_len_max": 64.0,
                "kl": 0.001 * step,
                "entropy": 2.0 - 0.1 * step,
                "clip_frac": 0.01,
                "frac_zero_std": 0.25,
                "grad_norm": 0.5,
                "time/rollout_s": 3.0,
                "time/reward_s": 1.0,
                "time/update_s": 2.0,
                "time/sync_s": 0.5,
                "skipped_for": None,
            }
        )
    rows[-1].update({k: v + 0.1 for k, v in ifeval.items()})
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = {
        "reward": {"strategy": strategy, "margin": 0.1},
        "logging": {"run_name": name, "output_dir": str(root)},
        "rollout": {"n": 8},
    }
    (path / "config.yaml").write_text(yaml.safe_dump(config))
    if samples:
        lines = []
        for step in range(1, len(pass_rates)):
            for i in range(3):
                lines.append(
                    {
                        "step": step,
                        "prompt_id": f"p{step}",
                        "response": f"{name} response {i} at step {step} | with a pipe",
                        "writing": 0.5,
                        "passed": i % 2 == 0,
                        "failed_constraints": [] if i % 2 == 0 else ["creative:word_count"],
                        "reward": 0.25,
                        "tokens": 12,
                    }
                )
        (path / "samples.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


def test_two_runs_overlaid_with_their_figures_differences_and_samples(tmp_path, capsys):
    a = _run_dir(tmp_path, "rlmr", [0.2, 0.3, 0.6, 0.5], "dynamic")
    b = _run_dir(tmp_path, "writing-only", [0.2, 0.25, 0.2, 0.3], "writing_only", samples=False)
    out = tmp_path / "report"
    assert main(["report", str(a), str(b), "-o", str(out)]) == 0
    assert capsys.readouterr().out.split() == [
        str(out / "curves.png"),
        str(out / "phases.png"),
        str(out / "report.md"),
    ]
    for png in ("curves.png", "phases.png"):
        data = (out / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    md = (out / "report.md").read_text()
    # last and best held-out pass rate, last train pass rate, last step
    assert "| rlmr | 3 | 0.5 (0.6) | 0.5 |" in md
    assert "IFEval prompt strict" in md and "| 0.3 (0.3) |" in md  # trainer.eval's last (best)
    assert "| writing-only | 3 | 0.3 (0.3) | 0.3 |" in md
    # the one config key that differs (run names and folders always do: not listed)
    assert "| `reward.strategy` | dynamic | writing_only |" in md
    assert "margin" not in md and "run_name" not in md
    # samples from the first and last step, two each, the table pipe escaped
    assert "### `rlmr`, step 1" in md and "### `rlmr`, step 3" in md
    assert "### `rlmr`, step 2" not in md
    assert "rlmr response 1 at step 3 \\| with a pipe" in md
    assert "rlmr response 2 at step 3" not in md
    assert "(failed: creative:word_count)" in md
    assert "`writing-only`: no samples.jsonl." in md
    assert "![curves](curves.png)" in md


def test_the_curves_hold_a_panel_per_logged_metric_and_leave_out_the_rest(tmp_path):
    from rlmr.training.plots import curves_figure
    from rlmr.training.report import load_run

    run = load_run(_run_dir(tmp_path, "one", [0.1, 0.2, 0.3], "dynamic"))
    titles = [ax.get_title() for ax in curves_figure({run.label: run.metrics}).axes if ax.lines]
    assert titles == [
        "held-out constraint pass rate",
        "train pass rate",
        "writing score (judge)",
        "mixed reward",
        "response length (tokens)",
        "longest response (tokens)",
        "IFEval prompt-level strict",
        "IFEval instruction-level loose",
        "KL to reference",
        "policy entropy",
        "clip fraction",
        "zero-variance groups",
        "gradient norm",
    ]


def test_one_run_has_no_config_section(tmp_path):
    a = _run_dir(tmp_path, "solo", [0.1, 0.2], "dynamic")
    assert main(["report", str(a), "-o", str(tmp_path / "r")]) == 0
    md = (tmp_path / "r" / "report.md").read_text()
    assert "Config differences" not in md and "| solo | 1 |" in md


def test_a_folder_that_is_not_a_run_is_named(tmp_path, capsys):
    assert main(["report", str(tmp_path), "-o", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err.strip() == (
        f"rlmr report: {tmp_path / 'metrics.jsonl'}: not found (is {tmp_path} a run directory?)"
    )


def test_labels_must_match_the_runs(tmp_path, capsys):
    a = _run_dir(tmp_path, "solo", [0.1, 0.2], "dynamic")
    assert main(["report", str(a), "--labels", "x", "y"]) == 2
    assert capsys.readouterr().err.strip() == "rlmr report: --labels: 2 label(s) for 1 run(s)"


def test_metrics_files_alone_are_reported_under_their_names(tmp_path):
    a = _run_dir(tmp_path, "x", [0.1, 0.2, 0.4], "dynamic")
    alone = tmp_path / "smollm2-rlmr.metrics.jsonl"
    alone.write_text((a / "metrics.jsonl").read_text())
    out = tmp_path / "r"
    assert main(["report", str(alone), "-o", str(out)]) == 0
    md = (out / "report.md").read_text()
    assert "| smollm2-rlmr | 2 | 0.4 (0.4) | 0.4 |" in md
    assert "`smollm2-rlmr`: no samples.jsonl." in md

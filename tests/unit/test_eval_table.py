"""`bench/eval_table.py`: the README's evaluation table, read from `rlmr eval` folders."""

from __future__ import annotations

import json
import runpy

from tests.conftest import REPO  # noqa: F401  (the repository root on sys.path)


def _summary(folder, suite, **figures):
    path = folder / suite / "summary.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"suite": suite, "checked": 3, "prompts": 3, **figures}))


def test_one_row_per_figure_with_intervals_and_copies(tmp_path, capsys):
    main = runpy.run_path(str(REPO / "bench" / "eval_table.py"))["main"]
    a, b = tmp_path / "a", tmp_path / "b"
    _summary(a, "ifeval", prompt_strict={"value": 0.1, "ci95": [0.0, 0.2]})
    _summary(b, "ifeval", prompt_strict={"value": 0.25, "ci95": [0.1, 0.4]})
    _summary(b, "pairwise", win_rate={"value": 0.5, "ci95": [0.4, 0.6]}, pairs=80)
    assert main([f"base={a}", f"rlmr={b}", "--copy", str(tmp_path / "kept")]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "| figure | n | base | rlmr |",
        "|---|---|---|---|",
        "| IFEval prompt-level strict | 3 | 0.100 [0.000, 0.200] | 0.250 [0.100, 0.400] |",
        "| win rate against the base model (GenRM, both orders) | 80 |  | 0.500 [0.400, 0.600] |",
    ]
    assert (tmp_path / "kept" / "rlmr" / "pairwise" / "summary.json").is_file()
    assert main([f"x={tmp_path / 'missing'}"]) == 2

"""The README stays true: its commands exist, name real files, and are what CI runs."""

from __future__ import annotations

import re
import runpy
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from rlmr.cli import build_parser
from rlmr.config import load_config

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text(encoding="utf-8")
readme_commands = runpy.run_path(str(REPO / ".ci" / "readme_commands.py"))["readme_commands"]


def test_readme_marks_install_test_and_main_commands():
    commands = readme_commands(README)
    assert {"install", "test", "main"} <= set(commands)
    main = shlex.split(commands["main"])
    assert main[:2] == ["rlmr", "train"]
    build_parser().parse_args(main[1:])
    load_config(REPO / main[2])
    assert "-c constraints-cpu.txt" in commands["install"]
    pins = [
        ln.strip()
        for ln in (REPO / "constraints-cpu.txt").read_text().splitlines()
        if not ln.startswith("#")
    ]
    assert "torch==2.13.0" in pins
    assert commands["test"].split()[:3] == ["python", "-m", "pytest"]


def test_ci_runs_the_readme_commands():
    ci = (REPO / ".ci" / "run").read_text()
    assert "readme_commands.py install" in ci and "readme_commands.py test" in ci
    assert 'eval "$install_cmd"' in ci and 'eval "$test_cmd"' in ci
    out = subprocess.run(
        [sys.executable, str(REPO / ".ci" / "readme_commands.py"), "test"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert out == readme_commands(README)["test"]


CONFIG_MENTIONS = sorted(set(re.findall(r"configs/[\w.\-/]+\.yaml", README)))


def test_readme_names_configs():
    assert CONFIG_MENTIONS


@pytest.mark.parametrize("path", CONFIG_MENTIONS)
def test_every_config_the_readme_names_exists_and_validates(path):
    load_config(REPO / path)


def _rlmr_invocations():
    """Every `rlmr ...` line inside the README's fenced code blocks."""
    blocks = re.findall(r"```(?:bash|sh)?\n(.*?)```", README, re.S)
    for block in blocks:
        for line in block.splitlines():
            m = re.match(r"^\s*(?:\$ )?rlmr (.*)$", line)
            if m:
                yield shlex.split(m.group(1).split("#")[0])


def test_every_rlmr_command_in_the_readme_parses():
    invocations = list(_rlmr_invocations())
    assert invocations
    parser = build_parser()
    for argv in invocations:
        parser.parse_args(argv)  # exits (fails the test) on an unknown subcommand or flag


def test_readme_layout_names_existing_paths():
    block = README.split("## Layout", 1)[1].split("```")[1]
    for line in block.splitlines():
        name = line.split()[0] if line.strip() else ""
        if not name or line.startswith("  "):
            continue
        for part in name.split(","):
            assert (REPO / part.strip().rstrip("/")).exists(), part


def test_readme_python_example_runs():
    code = README.split("```python", 1)[1].split("```", 1)[0]
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert scope["adv"][0, 0] < 0


def test_readme_has_no_unfilled_placeholders():
    for marker in ("INSTALL_FIGURES", "EVIDENCE_SECTION", "TODO", "TBD"):
        assert marker not in README, marker

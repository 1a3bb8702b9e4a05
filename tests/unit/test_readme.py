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


@pytest.mark.parametrize("name", ["install", "lint", "test"])
def test_ci_runs_the_readme_commands(name):
    ci = (REPO / ".ci" / "run").read_text()
    assert f"readme_commands.py {name}" in ci and f'eval "${name}_cmd"' in ci
    out = subprocess.run(
        [sys.executable, str(REPO / ".ci" / "readme_commands.py"), name],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert out == readme_commands(README)[name]


def test_the_lint_command_runs_ruff_check_and_format():
    lint = readme_commands(README)["lint"]
    assert "ruff check ." in lint and "ruff format --check ." in lint


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


# A path inside the repository, as prose, code blocks and docstrings write it: a top-level folder
# of the project (or a top-level file) followed by a relative path.
_PATH = re.compile(
    r"(?<![\w./-])((?:rlmr|actors|tests|configs|cluster|bench|docs|\.ci)/[\w./*-]*[\w/*]"
    r"|pyproject\.toml|constraints-cpu\.txt|README\.md)"
)


def mentioned_paths(text: str) -> set[str]:
    """Every repository path in `text` (with `(` `)` and trailing punctuation left out)."""
    return {m.rstrip("/.") for m in _PATH.findall(text)}


def _documents() -> dict[str, str]:
    """README, docs/, cluster/*.md, and every module docstring of rlmr/ and actors/."""
    import ast

    docs = {"README.md": README}
    for path in [*(REPO / "docs").glob("*.md"), *(REPO / "cluster").glob("*.md")]:
        docs[str(path.relative_to(REPO))] = path.read_text(encoding="utf-8")
    for top in ("rlmr", "actors"):
        for path in (REPO / top).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            strings = [
                ast.get_docstring(n) or ""
                for n in ast.walk(tree)
                if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef))
            ]
            docs[str(path.relative_to(REPO))] = "\n".join(strings)
    return docs


DOCUMENTS = _documents()


def test_path_finder_finds_indented_and_inline_paths():
    text = "see `rlmr/core/algo.py`,\n    tests/unit/ (and docs/ARCHITECTURE.md).\n  .ci/run x"
    assert mentioned_paths(text) == {
        "rlmr/core/algo.py",
        "tests/unit",
        "docs/ARCHITECTURE.md",
        ".ci/run",
    }


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_every_path_a_document_mentions_exists(name):
    missing = sorted(p for p in mentioned_paths(DOCUMENTS[name]) if not any(REPO.glob(p)))
    assert not missing, f"{name} mentions paths that are not in the repository: {missing}"


def test_the_readme_mentions_paths():
    assert len(mentioned_paths(README)) > 20


def test_readme_python_example_runs():
    code = README.split("```python", 1)[1].split("```", 1)[0]
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert scope["adv"][0, 0] < 0


def test_readme_has_no_unfilled_placeholders():
    for marker in ("INSTALL_FIGURES", "EVIDENCE_SECTION", "TODO", "TBD"):
        assert marker not in README, marker


# A config key as the documents write it: `section.key[.key...]`, in backticks.
_KEY = re.compile(
    r"`((?:model|data|rollout|reward|algo|learner|cluster|logging|checkpoint|trainer)"
    r"(?:\.\w+)+)(?:[:=][^`]*)?`"
)


def _config_keys() -> set[str]:
    """Every dotted key of the config tree, sections included (union variants merged)."""
    from tests.unit.test_config_fields import leaf_fields

    keys = set()
    for leaf in leaf_fields():
        parts = re.sub(r"\[\w+\]", "", leaf).split(".")
        keys.update(".".join(parts[: i + 1]) for i in range(len(parts)))
    return keys


@pytest.mark.parametrize("name", [n for n in sorted(DOCUMENTS) if n.endswith(".md")])
def test_every_config_key_a_document_names_exists(name):
    keys = _config_keys()
    unknown = sorted({k for k in _KEY.findall(DOCUMENTS[name]) if k not in keys})
    assert not unknown, f"{name} names config keys the config does not have: {unknown}"


def test_nothing_in_the_repository_reads_a_folder_beside_it():
    """Users clone the repository alone: no file may point at the shared folder beside it or at
    any sibling folder (this file included: the patterns below do not match their own text)."""
    files = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    outside = re.compile(r"\.\./shared|REPO\.parent\b|parents\[2\]\s*/\s*\"shared\"")
    hits = []
    for name in files:
        path = REPO / name
        if path.suffix not in {".py", ".md", ".sh", ".yaml", ".yml", ".toml", ".txt", ""}:
            continue
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        hits += [f"{name}: {m.group(0)}" for m in outside.finditer(text)]
    assert not hits, hits

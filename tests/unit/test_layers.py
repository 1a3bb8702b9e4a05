"""The layers of docs/ARCHITECTURE.md, enforced on the import graph of `rlmr/` and `actors/`.

Each module belongs to the layer named by its folder. A module may import its
own layer and the layers below it, never a layer above or a sibling layer of
the same rank; there is no import cycle between modules anywhere (imports
inside functions count; `if TYPE_CHECKING:` blocks do not run and do not
count). Third-party imports are limited per layer, and a runtime check imports
the config layer with torch and Ray blocked.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# (layer, rank): a module may import layers of lower rank, and its own layer.
LAYERS = {
    "rlmr": 0,  # the package itself: its version only
    "rlmr.config": 0,
    "rlmr.core": 1,
    "rlmr.data": 2,
    "rlmr.engine": 3,
    "rlmr.verify": 4,
    "rlmr.judge": 4,
    "rlmr.training": 5,
    "rlmr.tools": 6,
    "rlmr.evals": 6,
    "actors": 6,
    "rlmr.cli": 7,
}

# Third-party packages a layer must not import at all (anywhere in its modules).
FORBIDDEN = {
    "rlmr.config": {"torch", "numpy", "ray", "transformers", "deepspeed", "vllm", "datasets"},
    "rlmr.core": {"ray", "transformers", "deepspeed", "vllm", "datasets"},
    "rlmr.data": {"torch", "ray", "transformers", "deepspeed", "vllm"},
    "rlmr.engine": {"ray", "deepspeed"},
    "rlmr.verify": {"torch", "ray", "transformers", "deepspeed", "vllm", "datasets"},
    "rlmr.judge": {"torch", "ray", "transformers", "deepspeed", "vllm", "datasets"},
    "rlmr.training": {"ray", "vllm"},
    "rlmr.evals": {"ray", "vllm", "deepspeed"},
}
HEAVY = {"ray", "vllm", "deepspeed", "transformers", "datasets"}


def _modules() -> dict[str, Path]:
    mods = {}
    for top in ("rlmr", "actors"):
        for path in sorted((REPO / top).rglob("*.py")):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join(parts)] = path
    return mods


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The project module `name` refers to (a name inside a module resolves to the module)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _is_type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def _imports(path: Path) -> list[tuple[str, int]]:
    """(imported dotted name, line) for every import that can run, at any depth."""
    out = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if _is_type_checking(child):
                for sub in child.orelse:
                    visit(sub)
                continue
            if isinstance(child, ast.Import):
                out.extend((a.name, child.lineno) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                assert child.level == 0, f"{path}:{child.lineno}: use absolute imports"
                # `from pkg import sub` names the submodule, `from mod import x` the module.
                out.extend((f"{child.module}.{a.name}", child.lineno) for a in child.names)
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return out


def _layer(module: str) -> str:
    return max(
        (name for name in LAYERS if module == name or module.startswith(name + ".")), key=len
    )


def test_every_module_has_a_layer():
    assert all(_layer(m) for m in MODULES)
    assert {_layer(m) for m in MODULES} == set(LAYERS)


def test_no_module_imports_a_layer_above_it_or_a_sibling_layer():
    bad = []
    for module, path in MODULES.items():
        mine = _layer(module)
        for name, line in _imports(path):
            target = _resolve(name)
            if target is None:
                continue
            theirs = _layer(target)
            if theirs != mine and LAYERS[theirs] >= LAYERS[mine] and theirs != "rlmr":
                bad.append(f"{path.relative_to(REPO)}:{line}: {mine} imports {target} ({theirs})")
    assert not bad, "\n".join(sorted(set(bad)))


def test_the_core_never_reaches_the_ray_layer():
    users = sorted(
        {
            m
            for m, path in MODULES.items()
            for name, _ in _imports(path)
            if (_resolve(name) or "").split(".")[0] == "actors" and not m.startswith("actors")
        }
    )
    assert all(m.startswith("rlmr.cli") for m in users), users


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def strongconnect(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            strongconnect(v)
    return found


def test_no_import_cycles():
    graph = {m: set() for m in MODULES}
    for module, path in MODULES.items():
        for name, _ in _imports(path):
            target = _resolve(name)
            if target and target != module:
                graph[module].add(target)
    assert _cycles(graph) == []


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_third_party_imports_stay_in_their_layer(layer):
    bad = []
    for module, path in MODULES.items():
        if _layer(module) != layer:
            continue
        for name, line in _imports(path):
            top = name.split(".")[0]
            if top in FORBIDDEN[layer]:
                bad.append(f"{path.relative_to(REPO)}:{line}: imports {name}")
    assert not bad, "\n".join(sorted(set(bad)))


def _loaded_after(code: str) -> set[str]:
    probe = code + "\nimport sys\nprint(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO
    ).stdout
    return set(out.split())


def test_config_layer_imports_with_torch_and_ray_absent():
    code = (
        "import sys\n"
        "for name in ('torch', 'ray', 'numpy', 'transformers', 'deepspeed', 'vllm', 'datasets'):\n"
        "    sys.modules[name] = None\n"
        "import rlmr.config, rlmr.config.placement, rlmr.config.memory\n"
        "from rlmr.cli import main\n"
        "assert main(['config', '--quiet', 'configs/qwen2.5-32b-rlmr-4node.yaml']) == 0\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "module",
    [
        "rlmr",
        "rlmr.core.algo",
        "rlmr.core.rewards",
        "rlmr.core.shaping",
        "rlmr.core.records",
        "rlmr.data.prompts",
        "rlmr.engine",
        "rlmr.verify",
        "rlmr.judge",
        "rlmr.training.driver",
    ],
)
def test_importing_a_layer_loads_no_heavy_backend(module):
    loaded = _loaded_after(f"import {module}")
    assert not loaded & HEAVY, loaded & HEAVY


def test_cli_help_is_instant_and_imports_no_torch():
    loaded = _loaded_after("import rlmr.cli; rlmr.cli.build_parser()")
    assert "torch" not in loaded and not loaded & HEAVY


@pytest.mark.parametrize("path", sorted(MODULES.values()), ids=lambda p: str(p.relative_to(REPO)))
def test_no_source_file_exceeds_500_lines(path):
    assert len(path.read_text(encoding="utf-8").splitlines()) <= 500


def test_the_gpu_extra_lists_only_what_the_code_imports():
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    imported = {name.split(".")[0] for path in MODULES.values() for name, _ in _imports(path)}
    for requirement in project["optional-dependencies"]["gpu"]:
        dist = re.split(r"[<>=!~\[ ;]", requirement)[0].lower().replace("-", "_")
        assert dist in imported, (
            f"the gpu extra lists {requirement}, which nothing in rlmr/ or actors/ imports"
        )


def test_architecture_doc_lists_the_layers():
    doc = (REPO / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`((?:rlmr|actors)(?:\.\w+)?)`", doc))
    assert set(LAYERS) - {"rlmr"} <= named

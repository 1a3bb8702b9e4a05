"""The cluster manifests parse, carry their required fields, and agree with the package and each
other.

Covers cluster/ray-cluster.yaml (`ray up`), cluster/kuberay/{raycluster,rayjob}.yaml,
cluster/runtime_env.yaml, cluster/Dockerfile and cluster/submit.sh (syntax,
--help, local validation with --dry-run; no cluster is contacted). No GPU, no Ray cluster.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

from rlmr.config import load_config

REPO = Path(__file__).resolve().parents[2]
CLUSTER = REPO / "cluster"
RAY_UP = CLUSTER / "ray-cluster.yaml"
RAYCLUSTER = CLUSTER / "kuberay" / "raycluster.yaml"
RAYJOB = CLUSTER / "kuberay" / "rayjob.yaml"
RUNTIME_ENV = CLUSTER / "runtime_env.yaml"
DOCKERFILE = CLUSTER / "Dockerfile"
SUBMIT = CLUSTER / "submit.sh"
MANIFESTS = sorted(CLUSTER.rglob("*.yaml"))


def _load(path: Path):
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _pyproject() -> dict:
    import tomllib

    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def _ray_version_of_manifests() -> set[str]:
    found = {
        _load(RAYCLUSTER)["spec"]["rayVersion"],
        _load(RAYJOB)["spec"]["rayClusterSpec"]["rayVersion"],
    }
    found |= set(re.findall(r"rayproject/ray:([\d.]+)-", DOCKERFILE.read_text(encoding="utf-8")))
    for path in (RAY_UP, DOCKERFILE):
        found |= set(re.findall(r"ray\[default\]==([\d.]+)", path.read_text(encoding="utf-8")))
    return found


def _walk(node, path=()):
    """Every (key path, value) pair of a parsed YAML tree."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _walk(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, path + (i,))
    else:
        yield path, node


# --------------------------------------------------------------------------- all manifests


def test_manifests_exist_and_parse():
    for path in (RAY_UP, RAYCLUSTER, RAYJOB, RUNTIME_ENV):
        assert path in MANIFESTS, path
    for path in MANIFESTS:
        docs = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
        assert docs and all(isinstance(d, dict) for d in docs), f"{path}: not a YAML mapping"


def test_one_image_everywhere_tagged_with_the_package_version():
    images = set()
    for path in (RAYCLUSTER, RAYJOB):
        images |= {v for keys, v in _walk(_load(path)) if keys and keys[-1] == "image"}
    images |= set(re.findall(r"-t (\S+)", DOCKERFILE.read_text(encoding="utf-8")))
    assert len(images) == 1, images
    image = images.pop()
    assert image.rsplit(":", 1)[1] == _pyproject()["project"]["version"]
    assert image.rsplit(":", 1)[0].endswith("/rlmr")


def test_one_ray_version_everywhere_matching_the_package():
    found = _ray_version_of_manifests()
    assert len(found) == 1, found
    manifest_ray = found.pop()
    installed = version("ray")
    assert manifest_ray.split(".")[:2] == installed.split(".")[:2], (manifest_ray, installed)
    from packaging.requirements import Requirement

    ray_req = next(
        Requirement(r) for r in _pyproject()["project"]["dependencies"] if r.startswith("ray")
    )
    assert ray_req.specifier.contains(manifest_ray), (ray_req, manifest_ray)


def test_dashboards_bind_to_localhost_where_a_host_is_set():
    hosts = []
    for path in MANIFESTS:
        for keys, value in _walk(_load(path)):
            if keys and keys[-1] == "dashboard-host":
                hosts.append((path.name, value))
            if isinstance(value, str):
                hosts += [(path.name, h) for h in re.findall(r"--dashboard-host[= ](\S+)", value)]
    hosts += [
        ("submit.sh", h) for h in re.findall(r"--dashboard-host[= ](\S+)", SUBMIT.read_text())
    ]
    assert ("ray-cluster.yaml", "127.0.0.1") in hosts and ("raycluster.yaml", "127.0.0.1") in hosts
    assert all(h == "127.0.0.1" for _, h in hosts), hosts


def test_no_token_is_written_in_a_manifest():
    for path in [*MANIFESTS, SUBMIT, DOCKERFILE]:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"RAY_AUTH_TOKEN\s*[:=]\s*['\"]?[A-Za-z0-9]", text), path
        for keys, value in _walk(_load(path)) if path.suffix == ".yaml" else []:
            if keys and keys[-1] == "name" and value == "RAY_AUTH_TOKEN":
                pytest.fail(
                    f"{path}: sets RAY_AUTH_TOKEN; let KubeRay's authOptions or a Secret provide it"
                )


def test_every_config_a_cluster_file_names_exists_and_validates():
    named = set()
    for path in [*CLUSTER.rglob("*")]:
        if (
            path.is_file()
            and path.suffix in (".yaml", ".md", ".sh", "")
            and path.name != "Dockerfile.dockerignore"
        ):
            named |= set(re.findall(r"\bconfigs/[\w.-]+\.yaml\b", path.read_text(encoding="utf-8")))
    assert "configs/qwen2.5-7b-rlmr.yaml" in named
    for rel in sorted(named):
        load_config(REPO / rel)  # raises ConfigError naming the key when it does not validate


# --------------------------------------------------------------------------- ray up


def test_ray_up_config():
    cfg = _load(RAY_UP)
    for key in (
        "cluster_name",
        "max_workers",
        "provider",
        "auth",
        "available_node_types",
        "head_node_type",
        "file_mounts",
        "setup_commands",
        "head_start_ray_commands",
        "worker_start_ray_commands",
    ):
        assert key in cfg, key
    assert cfg["provider"]["type"] in ("aws", "gcp", "azure")
    types = cfg["available_node_types"]
    assert cfg["head_node_type"] in types
    workers = [name for name in types if name != cfg["head_node_type"]]
    assert workers and all("node_config" in types[w] and "max_workers" in types[w] for w in workers)
    assert max(types[w]["max_workers"] for w in workers) >= 32, (
        "the 32-node layouts of SCALING.md must fit"
    )
    assert "." in cfg["file_mounts"].values(), "the checkout must be copied to the nodes"
    setup = "\n".join(cfg["setup_commands"])
    assert re.search(r"pip install -e ['\"]?\.\[gpu\]", setup), (
        "setup must install the package with the gpu extra"
    )
    head = " ".join(cfg["head_start_ray_commands"])
    assert "--head" in head and "--dashboard-host=127.0.0.1" in head
    for cmds in (cfg["head_start_ray_commands"], cfg["worker_start_ray_commands"]):
        assert "RAY_AUTH_MODE=token" in " ".join(cmds)
    assert any(src.endswith(".ray/auth_token") for src in cfg["file_mounts"].values())
    excluded = " ".join(cfg.get("rsync_exclude", []))
    for name in ("runs", ".cache", "checkpoints", ".git"):
        assert name in excluded, name


# --------------------------------------------------------------------------- KubeRay


def _check_ray_cluster_spec(spec: dict, where: str):
    assert spec["rayVersion"]
    assert spec.get("authOptions", {}).get("mode") == "token", f"{where}: token authentication off"
    head = spec["headGroupSpec"]
    assert head.get("serviceType", "ClusterIP") == "ClusterIP", f"{where}: head service exposed"
    head_container = head["template"]["spec"]["containers"][0]
    assert head_container["image"]
    assert "nvidia.com/gpu" not in str(head_container.get("resources", {})), (
        f"{where}: GPUs on the head"
    )
    groups = spec["workerGroupSpecs"]
    assert groups, where
    for group in groups:
        assert {"groupName", "replicas", "minReplicas", "maxReplicas", "template"} <= set(group), (
            where
        )
        pod = group["template"]["spec"]
        assert pod.get("nodeSelector"), f"{where}: GPU workers need a nodeSelector"
        assert any(t.get("key") == "nvidia.com/gpu" for t in pod.get("tolerations", [])), where
        res = pod["containers"][0]["resources"]
        assert res["limits"]["nvidia.com/gpu"] == res["requests"]["nvidia.com/gpu"] == "8", where
        mounts = {m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
        assert {"/models", "/shared", "/dev/shm"} <= mounts, where


def test_kuberay_raycluster():
    doc = _load(RAYCLUSTER)
    assert doc["apiVersion"] == "ray.io/v1" and doc["kind"] == "RayCluster"
    assert doc["metadata"]["name"]
    _check_ray_cluster_spec(doc["spec"], "raycluster.yaml")


def test_kuberay_rayjob():
    doc = _load(RAYJOB)
    assert doc["apiVersion"] == "ray.io/v1" and doc["kind"] == "RayJob"
    spec = doc["spec"]
    assert spec["entrypoint"] == "rlmr train configs/qwen2.5-7b-rlmr.yaml"
    assert spec.get("shutdownAfterJobFinishes") is True
    _check_ray_cluster_spec(spec["rayClusterSpec"], "rayjob.yaml")
    env = yaml.safe_load(spec["runtimeEnvYAML"])
    assert env["working_dir"] and not {"pip", "conda", "uv"} & set(env)
    for pattern in ("runs/", ".cache/", "checkpoints/", ".git/"):
        assert pattern in env["excludes"], pattern
    # The workers must hold every GPU the config's cluster section asks for.
    cfg = load_config(REPO / spec["entrypoint"].split()[2])
    group = spec["rayClusterSpec"]["workerGroupSpecs"][0]
    assert group["replicas"] == cfg.cluster.nodes
    assert (
        int(group["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"])
        == cfg.cluster.gpus_per_node
    )


def test_dockerfile_installs_the_gpu_extra_on_the_ray_image():
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert re.search(r"^FROM rayproject/ray:[\d.]+-py3\d+-gpu$", text, re.M)
    assert re.search(r"pip install .*-e ['\"]?\.\[gpu\]", text)
    ignore = (CLUSTER / "Dockerfile.dockerignore").read_text(encoding="utf-8").split()
    assert {"runs", ".cache", ".git"} <= set(ignore)


# --------------------------------------------------------------------------- runtime env


def test_runtime_env_ships_code_not_outputs():
    env = _load(RUNTIME_ENV)
    assert env["working_dir"] == "."
    assert not {"pip", "conda", "uv", "py_modules"} & set(env), (
        "nodes have the package installed; ship code only"
    )
    for pattern in (
        "runs/",
        ".cache/",
        "checkpoints/",
        ".git/",
        "__pycache__/",
        "*.egg-info/",
        ".venv*/",
    ):
        assert pattern in env["excludes"], pattern
    assert not any(k.startswith("RAY_AUTH") for k in env.get("env_vars", {})), (
        "auth comes from the nodes"
    )


def test_runtime_env_excludes_match_like_ray_matches_them():
    packaging = pytest.importorskip("ray._private.runtime_env.packaging")
    match = packaging._get_excludes(REPO, _load(RUNTIME_ENV)["excludes"])
    for excluded in (
        "runs/tiny/metrics.jsonl",
        "runs/t/checkpoints/step_000002/policy/model.safetensors",
        "x/.cache/tok.json",
        ".git/HEAD",
        "rlmr/__pycache__/a.pyc",
        "rlmr.egg-info/PKG-INFO",
        ".venv-gpu/bin/python",
        "venv/bin/python",
        "checkpoints/latest",
    ):
        assert match(REPO / excluded), excluded
    for shipped in (
        "rlmr/config.py",
        "actors/learner.py",
        "configs/tiny.yaml",
        "cluster/runtime_env.yaml",
        "rlmr/assets/prompts/train.jsonl",
        "pyproject.toml",
    ):
        assert not match(REPO / shipped), shipped


# --------------------------------------------------------------------------- submit.sh


def _submit(*args, env=None):
    env = {**os.environ, **(env or {})}
    env["PATH"] = (
        # this venv's rlmr and ray
        f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    )
    return subprocess.run(
        [str(SUBMIT), *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )


def test_submit_sh_is_executable_bash():
    assert os.access(SUBMIT, os.X_OK)
    assert SUBMIT.read_text().startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in SUBMIT.read_text()
    subprocess.run(["bash", "-n", str(SUBMIT)], check=True)


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_submit_sh_is_shellcheck_clean():
    out = subprocess.run(["shellcheck", str(SUBMIT)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout


def test_submit_sh_help_and_usage_errors():
    assert _submit("--help").returncode == 0
    assert "ray job submit" in _submit("--help").stdout
    missing = _submit()
    assert missing.returncode == 2 and "missing CONFIG" in missing.stderr
    assert _submit("configs/tiny.yaml", "--bogus").returncode == 2
    assert _submit("configs/tiny.yaml", "--address", "auto", "--dry-run").returncode == 2
    assert _submit("configs/nope.yaml", "--dry-run").returncode == 2


def test_submit_sh_validates_locally_before_submitting():
    bad = _submit("configs/tiny.yaml", "--set", "trainer.steps=0", "--dry-run")
    assert bad.returncode == 2
    assert "trainer.steps" in bad.stderr and "nothing was submitted" in bad.stderr


def test_submit_sh_dry_run_prints_the_job_submission(tmp_path):
    out = _submit(
        "--address",
        "http://10.0.0.1:8265/",
        "configs/tiny.yaml",
        "--set",
        "trainer.steps=2",
        "--resume",
        "--submission-id",
        "rlmr-test",
        "--dry-run",
    )
    assert out.returncode == 0, out.stderr
    line = out.stdout.strip().splitlines()[-1]
    assert line.startswith(
        "ray job submit --address http://10.0.0.1:8265 --runtime-env cluster/runtime_env.yaml "
        "--submission-id rlmr-test --no-wait -- rlmr train configs/tiny.yaml"
    )
    assert line.rstrip().endswith("--set trainer.steps=2 --resume")
    # From another folder, the config path is made relative to the repository that ships.
    elsewhere = subprocess.run(
        [str(SUBMIT), str(REPO / "configs" / "tiny.yaml"), "--dry-run"],
        cwd=tmp_path,
        env={
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert elsewhere.returncode == 0, elsewhere.stderr
    assert "-- rlmr train configs/tiny.yaml" in elsewhere.stdout


def test_submit_sh_refuses_an_unreachable_cluster():
    # Port 9 (discard) on localhost: nothing answers there, so no job can reach anyone's cluster.
    out = _submit("--address", "http://127.0.0.1:9", "configs/tiny.yaml", "--no-follow")
    assert out.returncode == 3
    assert "no Ray dashboard answers" in out.stderr

"""`ray job submit` end to end on CPU: a private Ray head, cluster/submit.sh, two training steps.

Starts its own Ray head on 127.0.0.1 (free ports, its own short --temp-dir,
token auth disabled, dashboard on 127.0.0.1), submits

    rlmr train configs/tiny.yaml --set trainer.steps=2 --set logging.output_dir=TMP \
        --set logging.run_name=jobtest

through cluster/submit.sh (local validation, `ray job submit` with
cluster/runtime_env.yaml, log following, exit with the job's status), checks
the job SUCCEEDED and that TMP/jobtest/metrics.jsonl has steps 1 and 2.

Teardown stops only this head, also when the test fails: `ray stop` would stop
every Ray on the machine, so the fixture terminates the `ray start --block`
process it launched and then, by PID, whatever is left of its process tree or
names its unique temp dir. CPU only, about a minute or two on 2 cores:

    python -m pytest -q tests/integration/test_job_submit.py
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
SUBMIT = REPO / "cluster" / "submit.sh"
BIN = Path(sys.executable).parent  # this virtualenv's `ray` and `rlmr`
START_TIMEOUT_S = 180
JOB_TIMEOUT_S = 900


@dataclass
class LocalHead:
    address: str  # the dashboard / job API, http://127.0.0.1:PORT
    temp_dir: str
    env: dict[str, str]
    process: subprocess.Popen


def _free_ports(n: int) -> list[int]:
    """n distinct ports that were free a moment ago on 127.0.0.1."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


def _get(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.read().decode()


def _own_processes(root_pid: int, temp_dir: str) -> dict:
    """The head's processes: the `ray start` process tree, and any process naming our temp dir."""
    import psutil

    found = {}
    with contextlib.suppress(psutil.NoSuchProcess):
        root = psutil.Process(root_pid)
        found[root.pid] = root
        for child in root.children(recursive=True):
            found[child.pid] = child
    me = psutil.Process().username()
    for proc in psutil.process_iter(["cmdline", "username"]):
        with contextlib.suppress(psutil.Error):
            if proc.info["username"] == me and any(
                temp_dir in arg for arg in proc.info["cmdline"] or ()
            ):
                found[proc.pid] = proc
    found.pop(os.getpid(), None)
    return found


def _stop_own_head(head_proc: subprocess.Popen, temp_dir: str) -> list[int]:
    """Stop the head we started, by PID only; returns the PIDs that had to be killed."""
    import psutil

    procs = _own_processes(head_proc.pid, temp_dir)  # before the tree loses its root
    if head_proc.poll() is None:
        head_proc.terminate()  # `ray start --block` shuts its node down on SIGTERM
        with contextlib.suppress(subprocess.TimeoutExpired):
            head_proc.wait(timeout=30)
    procs.update(_own_processes(head_proc.pid, temp_dir))
    alive = [p for p in procs.values() if p.is_running()]
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.terminate()
    _, alive = psutil.wait_procs(alive, timeout=15)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(alive, timeout=10)
    if head_proc.poll() is None:
        head_proc.kill()
        head_proc.wait(timeout=10)
    return [p.pid for p in alive]


@pytest.fixture
def local_ray_head(tmp_path):
    pytest.importorskip("psutil")
    # Short: Ray's unix socket paths live under it and must stay under ~107 characters.
    temp_dir = tempfile.mkdtemp(prefix="rj", dir="/tmp")
    gcs, dashboard, client, agent_http, agent_grpc, metrics, env_agent, node_mgr, obj_mgr = (
        _free_ports(9)
    )
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "disabled",
        "RAY_USAGE_STATS_ENABLED": "0",
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    env.pop("RAY_ADDRESS", None)
    cmd = [
        str(BIN / "ray"),
        "start",
        "--head",
        "--block",
        "--node-ip-address",
        "127.0.0.1",
        "--port",
        str(gcs),
        "--include-dashboard",
        "true",
        "--dashboard-host",
        "127.0.0.1",
        "--dashboard-port",
        str(dashboard),
        "--ray-client-server-port",
        str(client),
        "--dashboard-agent-listen-port",
        str(agent_http),
        "--dashboard-agent-grpc-port",
        str(agent_grpc),
        "--metrics-export-port",
        str(metrics),
        "--runtime-env-agent-port",
        str(env_agent),
        "--node-manager-port",
        str(node_mgr),
        "--object-manager-port",
        str(obj_mgr),
        "--num-cpus",
        "2",
        "--num-gpus",
        "0",
        "--object-store-memory",
        str(300 * 1024 * 1024),
        "--temp-dir",
        temp_dir,
        "--disable-usage-stats",
    ]
    log_path = tmp_path / "ray-start.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    head = LocalHead(f"http://127.0.0.1:{dashboard}", temp_dir, env, proc)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"ray start exited with {proc.returncode}:\n{log_path.read_text()[-4000:]}"
                )
            with contextlib.suppress(OSError):
                if "success" in _get(f"{head.address}/api/gcs_healthz") and _get(
                    f"{head.address}/api/version"
                ):
                    break
            if time.monotonic() > deadline:
                pytest.fail(
                    f"the Ray dashboard did not answer within {START_TIMEOUT_S} s:\n"
                    f"{log_path.read_text()[-4000:]}"
                )
            time.sleep(1.0)
        yield head
    finally:
        _stop_own_head(proc, temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _job_logs(head: LocalHead, job_id: str) -> str:
    from ray.job_submission import JobSubmissionClient

    with contextlib.suppress(Exception):
        return JobSubmissionClient(head.address).get_job_logs(job_id)[-6000:]
    return "<no logs>"


def test_submit_tiny_run_as_a_ray_job(local_ray_head, tmp_path):
    from ray.job_submission import JobStatus, JobSubmissionClient

    head = local_ray_head
    out_dir = tmp_path / "runs"
    job_id = f"rlmr-jobtest-{os.getpid()}"
    cmd = [
        str(SUBMIT),
        "--address",
        head.address,
        "configs/tiny.yaml",
        "--set",
        "trainer.steps=2",
        "--set",
        f"logging.output_dir={out_dir}",
        "--set",
        "logging.run_name=jobtest",
        "--submission-id",
        job_id,
    ]
    client = JobSubmissionClient(head.address)
    try:
        result = subprocess.run(
            cmd, cwd=REPO, env=head.env, capture_output=True, text=True, timeout=JOB_TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        with contextlib.suppress(Exception):
            client.stop_job(job_id)
        pytest.fail(
            f"the job did not finish within {JOB_TIMEOUT_S} s; logs:\n{_job_logs(head, job_id)}"
        )

    status = client.get_job_status(job_id)
    assert result.returncode == 0 and status == JobStatus.SUCCEEDED, (
        f"submit.sh exited {result.returncode}, job {status}\n--- stdout\n{result.stdout[-6000:]}"
        f"\n--- stderr\n{result.stderr[-3000:]}"
    )
    assert f"job id: {job_id}" in result.stdout
    assert f"job {job_id}: SUCCEEDED" in result.stdout

    metrics = out_dir / "jobtest" / "metrics.jsonl"
    assert metrics.is_file(), f"no {metrics}; job logs:\n{_job_logs(head, job_id)}"
    rows = [
        json.loads(line)
        for line in metrics.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    steps = {r["step"] for r in rows}
    assert {1, 2} <= steps and max(steps) == 2, rows

"""Secrets (the W&B key, a teacher endpoint's API key) come from the environment only and never
reach configs, logs, metrics, samples or saved resolved configs; what the project starts binds to
127.0.0.1.

Every test sets the keys to distinctive values and looks for them in everything that was written
or printed: the run directory of a short fake-services driver run (resolved config.yaml,
metrics.jsonl, samples.jsonl, TensorBoard events, checkpoints), what was handed to W&B (a
stand-in module), the teacher `ChatEndpoint` against a stub HTTP server on 127.0.0.1 (its repr,
its errors, the `rlmr genrm distill` command's output and files). No network, no Ray cluster:
`ray.init` is replaced by a recorder.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import re
import subprocess
import sys
import traceback
import types
import typing
from pathlib import Path

import pydantic
import pytest
import yaml

from rlmr.config import ConfigError, load_config
from rlmr.config.schema import RLMRConfig
from rlmr.core.records import PromptRow
from rlmr.engine.chat_api import ChatEndpoint, TeacherError
from rlmr.training.driver import run_training
from rlmr.training.run_dir import RunDir
from tests.fake_services import FakeServices, fake_run_config
from tests.fakes import JSONEndpoint, serve_http, tiny_cache  # noqa: F401 (fixture)

REPO = Path(__file__).resolve().parents[2]
WANDB_SECRET = "wandb-test-secret-4f9c2e7a1b"
TEACHER_VAR = "RLMR_TEST_TEACHER_API_KEY"
TEACHER_SECRET = "sk-teacher-test-secret-8d3b6f0e52"
SECRETS = (WANDB_SECRET, TEACHER_SECRET)


@pytest.fixture
def secrets_in_env(monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", WANDB_SECRET)
    monkeypatch.setenv(TEACHER_VAR, TEACHER_SECRET)


def assert_no_secret(text: str | bytes, where: str) -> None:
    data = text.encode("utf-8", errors="replace") if isinstance(text, str) else text
    for secret in SECRETS:
        assert secret.encode() not in data, f"{where} holds the secret {secret[:12]}..."


def assert_no_secret_in_files(root: Path) -> list[Path]:
    files = [p for p in root.rglob("*") if p.is_file()]
    for path in files:
        assert_no_secret(path.read_bytes(), str(path))
    return files


# --------------------------------------------------------------------------- run directory


class FakeWandb:
    """Stands in for the `wandb` module: records what `RunDir` hands to it."""

    def __init__(self):
        self.inits: list[dict] = []
        self.logged: list[tuple] = []
        self.finished = 0
        self.module = types.ModuleType("wandb")
        self.module.init = self._init

    def _init(self, **kwargs):
        self.inits.append(kwargs)
        return types.SimpleNamespace(
            log=lambda data, step=None: self.logged.append((step, data)),
            finish=self._finish,
        )

    def _finish(self):
        self.finished += 1


ROWS = [PromptRow(id=f"p{i}", prompt=f"Write piece {i}.") for i in range(6)]
HELD_OUT = [PromptRow(id=f"h{i}", prompt=f"Held out {i}.") for i in range(2)]


@pytest.mark.usefixtures("secrets_in_env")
def test_a_run_writes_and_logs_no_secret(tmp_path, monkeypatch, capfd, caplog):
    caplog.set_level(logging.DEBUG)
    wandb = FakeWandb()
    monkeypatch.setitem(sys.modules, "wandb", wandb.module)
    out = tmp_path / "runs"
    cfg = fake_run_config(
        out,
        "trainer.steps=2",
        "trainer.eval_every=1",
        "checkpoint.every=1",
        "logging.tensorboard=true",
        "logging.wandb={enabled: true, project: secrets-test}",
    )
    services = FakeServices()
    run = RunDir(cfg)
    rows = run_training(cfg, services, run, ROWS, HELD_OUT)
    assert [r["step"] for r in rows] == [0, 1, 2]

    # W&B was used (so the key was needed), and nothing handed to it holds a key.
    assert len(wandb.inits) == 1 and wandb.finished == 1 and len(wandb.logged) == 3
    assert_no_secret(repr(wandb.inits) + repr(wandb.logged), "what RunDir handed to wandb")
    assert wandb.inits[0]["config"] == cfg.model_dump(mode="json")

    # Every file of the run: config.yaml, metrics, samples, TensorBoard events, checkpoints.
    files = assert_no_secret_in_files(out)
    written = {p.relative_to(run.path).parts[0] for p in files if run.path in p.parents}
    assert {"config.yaml", "metrics.jsonl", "samples.jsonl", "tb", "checkpoints"} <= written
    saved = yaml.safe_load((run.path / "config.yaml").read_text(encoding="utf-8"))
    assert saved["logging"]["wandb"] == {"enabled": True, "project": "secrets-test", "entity": None}

    captured = capfd.readouterr()
    assert_no_secret(captured.out + captured.err, "the run's stdout/stderr")
    assert_no_secret(caplog.text, "the run's log records")


@pytest.mark.usefixtures("secrets_in_env")
def test_rlmr_config_prints_a_resolved_config_without_secrets(tmp_path, capsys):
    from rlmr.cli import main

    path = tmp_path / "c.yaml"
    path.write_text(
        "model: {source: {type: tiny}}\ndata: {train: x}\nlogging: {wandb: {enabled: true}}\n"
    )
    assert main(["config", str(path)]) == 0
    printed = capsys.readouterr()
    assert "wandb:" in printed.out
    assert_no_secret(printed.out + printed.err, "rlmr config")


def test_wandb_without_a_key_in_the_environment_is_refused(tmp_path, monkeypatch):
    from rlmr.training.run_dir import RunDirError

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setitem(sys.modules, "wandb", FakeWandb().module)
    cfg = fake_run_config(tmp_path, "logging.wandb={enabled: true}")
    with pytest.raises(RunDirError, match="WANDB_API_KEY is not set in the environment"):
        RunDir(cfg).open_loggers()


# --------------------------------------------------------------------------- configs


CREDENTIAL = re.compile(
    r"(^|_)(api_?key|keys?|secrets?|passwords?|passwd|auth|credentials?|bearer|token)($|_)", re.I
)


def _config_sections():
    """Every pydantic model reachable from RLMRConfig, with its dotted path."""
    found, todo = {}, [("", RLMRConfig)]
    while todo:
        path, model = todo.pop()
        if model in found.values():
            continue
        found[path or "<top level>"] = model
        for name, field in model.model_fields.items():
            stack = [field.annotation]
            while stack:
                ann = stack.pop()
                if isinstance(ann, type) and issubclass(ann, pydantic.BaseModel):
                    todo.append((f"{path}{name}.", ann))
                stack.extend(typing.get_args(ann))
    return found


def test_no_config_section_has_a_field_that_would_hold_a_credential():
    sections = _config_sections()
    assert len(sections) > 10 and any(m.__name__ == "WandbConfig" for m in sections.values())
    for path, model in sections.items():
        assert model.model_config.get("extra") == "forbid", path
        for name in model.model_fields:
            assert not CREDENTIAL.search(name), f"{path}{name} looks like a credential field"


BASE_YAML = "model: {source: {type: tiny}}\ndata: {train: x}\n"


@pytest.mark.parametrize(
    ("yaml_text", "key"),
    [
        (
            f"logging: {{wandb: {{enabled: true, api_key: {WANDB_SECRET}}}}}",
            "logging.wandb.api_key",
        ),
        (f"logging: {{wandb: {{key: {WANDB_SECRET}}}}}", "logging.wandb.key"),
        (f"logging: {{wandb_api_key: {WANDB_SECRET}}}", "logging.wandb_api_key"),
        (f"api_key: {TEACHER_SECRET}", "api_key"),
        (
            f"reward: {{writing: {{type: genrm, api_key: {TEACHER_SECRET}}}}}",
            "reward.writing.api_key",
        ),
        (
            "reward: {writing: {type: genrm, engine: {type: hf, api_key: " + TEACHER_SECRET + "}}}",
            "reward.writing.engine.api_key",
        ),
        (f"judge: {{teacher_api_key: {TEACHER_SECRET}}}", "judge.teacher_api_key"),
    ],
)
def test_a_key_written_into_a_config_is_refused_as_an_unknown_key(tmp_path, yaml_text, key):
    path = tmp_path / "c.yaml"
    path.write_text(BASE_YAML + yaml_text + "\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert f"{key}: unknown key" in message, message
    assert_no_secret(message, "the config error")


def test_a_key_passed_with_set_is_refused_as_an_unknown_key(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(BASE_YAML)
    with pytest.raises(ConfigError) as err:
        load_config(path, [f"logging.wandb.api_key={WANDB_SECRET}"])
    message = str(err.value)
    assert "--set logging.wandb.api_key: logging.wandb.api_key: unknown key" in message
    assert_no_secret(message, "the config error")


# --------------------------------------------------------------------------- teacher endpoint


class _Stub(JSONEndpoint):
    """An OpenAI-compatible endpoint. Model "ok" answers; "denied" refuses with 401; "echo" refuses
    with 401 and repeats the credential it was shown, as some servers do."""

    seen: list = []

    def do_POST(self):  # noqa: N802 (http.server's API)
        body = self.request_json()
        auth = self.headers.get("Authorization") or ""
        _Stub.seen.append((self.path, auth, body))
        if body["model"] in ("denied", "echo"):
            shown = auth.removeprefix("Bearer ")
            detail = f"invalid api key: {shown}" if body["model"] == "echo" else "invalid api key"
            self.send_json(401, {"error": {"message": detail, "type": "invalid_request_error"}})
            return
        content = body["messages"][-1]["content"]
        # Judges whichever response says "good" better (distillation prompts), else echoes.
        if "good" in content and "bad" in content:
            verdict = "A" if content.index("good") < content.index("bad") else "B"
            content = f"One is better.\nVerdict: {verdict}"
        self.send_json(200, {"choices": [{"message": {"content": content}}]})


@pytest.fixture
def endpoint():
    _Stub.seen = []
    with serve_http(_Stub) as url:
        yield url


def _exception_text(err: BaseException) -> str:
    return str(err) + repr(err) + "".join(traceback.format_exception(err))


def test_the_endpoint_takes_its_key_from_an_environment_variable_only():
    params = inspect.signature(ChatEndpoint).parameters
    assert "api_key_env" in params
    assert not [p for p in params if CREDENTIAL.search(p) and p != "api_key_env"], list(params)
    with pytest.raises(TypeError):
        ChatEndpoint("http://127.0.0.1:9/v1", "m", api_key=TEACHER_SECRET)  # type: ignore[call-arg]


@pytest.mark.usefixtures("secrets_in_env")
def test_the_endpoint_sends_the_key_but_never_shows_it(endpoint, capfd, caplog):
    caplog.set_level(logging.DEBUG)
    teacher = ChatEndpoint(endpoint, "ok", api_key_env=TEACHER_VAR)
    assert teacher.complete([[{"role": "user", "content": "hello"}]], max_tokens=8) == ["hello"]
    assert _Stub.seen[-1][1] == f"Bearer {TEACHER_SECRET}"  # it was sent, as a bearer token
    assert_no_secret(repr(teacher) + str(teacher), "the endpoint's repr")
    captured = capfd.readouterr()
    assert_no_secret(captured.out + captured.err + caplog.text, "output and logs")


@pytest.mark.usefixtures("secrets_in_env")
def test_an_http_error_does_not_carry_the_key(endpoint, caplog):
    caplog.set_level(logging.DEBUG)
    teacher = ChatEndpoint(endpoint, "denied", api_key_env=TEACHER_VAR)
    with pytest.raises(TeacherError, match="answered HTTP 401") as err:
        teacher.complete([[{"role": "user", "content": "hello"}]], max_tokens=8)
    assert _Stub.seen[-1][1] == f"Bearer {TEACHER_SECRET}"
    assert_no_secret(_exception_text(err.value), "the TeacherError")
    unreachable = ChatEndpoint("http://127.0.0.1:9/v1", "m", api_key_env=TEACHER_VAR, timeout=5)
    with pytest.raises(TeacherError, match="cannot be reached") as err:
        unreachable.complete([[{"role": "user", "content": "hello"}]], max_tokens=8)
    assert_no_secret(_exception_text(err.value), "the TeacherError")
    assert_no_secret(caplog.text, "the log records")


@pytest.mark.usefixtures("secrets_in_env")
def test_an_http_error_body_that_repeats_the_key_does_not_carry_it(endpoint):
    teacher = ChatEndpoint(endpoint, "echo", api_key_env=TEACHER_VAR)
    with pytest.raises(TeacherError, match="answered HTTP 401") as err:
        teacher.complete([[{"role": "user", "content": "hello"}]], max_tokens=8)
    assert_no_secret(_exception_text(err.value), "the TeacherError")


def _pairs_file(tmp_path: Path) -> Path:
    from rlmr.data.pairs import PreferencePair

    pairs = [
        PreferencePair(id=f"p{i}", prompt=f"Write {i}.", chosen=f"good {i}", rejected=f"bad {i}")
        for i in range(2)
    ]
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(p.to_dict()) + "\n" for p in pairs))
    return path


def _distill_argv(pairs: Path, endpoint: str, model: str, out: Path, *key_args: str) -> list:
    return [
        "genrm",
        "distill",
        "--pairs",
        str(pairs),
        "--model",
        "tiny",
        "--max-judge-len",
        "1024",
        "--teacher",
        endpoint,
        "--teacher-model",
        model,
        *key_args,
        "--out",
        str(out),
        "--no-progress",
    ]


@pytest.mark.usefixtures("tiny_cache", "secrets_in_env")
def test_distill_with_an_endpoint_teacher_writes_and_prints_no_key(
    endpoint, tmp_path, capfd, caplog
):
    from rlmr.cli import main

    caplog.set_level(logging.DEBUG)
    pairs, work = _pairs_file(tmp_path), tmp_path / "out"
    key = ("--api-key-env", TEACHER_VAR)
    assert main(_distill_argv(pairs, endpoint, "ok", work / "chains.jsonl", *key)) == 0
    assert (work / "chains.jsonl").read_text().count("\n") == 4  # both pairs, both orders
    assert main(_distill_argv(pairs, endpoint, "denied", work / "refused.jsonl", *key)) == 1
    assert {auth for _, auth, _ in _Stub.seen} == {f"Bearer {TEACHER_SECRET}"}
    captured = capfd.readouterr()
    assert "answered HTTP 401" in captured.err
    assert_no_secret(captured.out + captured.err + caplog.text, "rlmr genrm distill's output")
    assert_no_secret_in_files(work)


@pytest.mark.usefixtures("secrets_in_env")
def test_a_key_given_on_the_command_line_is_refused_without_being_printed(
    endpoint, tmp_path, capfd
):
    from rlmr.cli import main

    argv = _distill_argv(
        _pairs_file(tmp_path),
        endpoint,
        "ok",
        tmp_path / "chains.jsonl",
        "--api-key",
        TEACHER_SECRET,
    )
    try:
        status = main(argv)
    except SystemExit as exit_:  # argparse refusing the option is fine too
        status = exit_.code
    captured = capfd.readouterr()
    assert status not in (0, None)
    assert _Stub.seen == []  # nothing was sent anywhere
    assert_no_secret(captured.out + captured.err, "rlmr genrm distill's output")


# --------------------------------------------------------------------------- binding


def _isolate_env(monkeypatch, *names: str) -> None:
    """Unset `names` for the test and restore them afterwards, even if the code sets them."""
    for name in names:
        monkeypatch.setenv(name, "placeholder")
        monkeypatch.delenv(name)


@pytest.mark.usefixtures("secrets_in_env")
@pytest.mark.parametrize(
    ("address", "ray_address_env"),
    [(None, None), ("auto", None), (None, "http://127.0.0.1:8265")],
    ids=["local", "join_auto", "inside_ray_job"],
)
def test_ray_init_never_binds_the_dashboard_to_all_interfaces(
    tmp_path, monkeypatch, address, ray_address_env
):
    import ray

    from rlmr.cli.train import init_ray

    _isolate_env(
        monkeypatch,
        "RAY_ADDRESS",
        "RAY_AUTH_MODE",
        "RAY_USAGE_STATS_ENABLED",
        "RAY_OVERRIDE_JOB_RUNTIME_ENV",
    )
    if ray_address_env:
        monkeypatch.setenv("RAY_ADDRESS", ray_address_env)
    calls = []
    monkeypatch.setattr(ray, "init", lambda *args, **kwargs: calls.append((args, kwargs)))
    init_ray(address, fake_run_config(tmp_path))
    ((args, kwargs),) = calls
    assert not args and kwargs.get("address") == address
    local = address is None and ray_address_env is None
    if local:  # a private cluster: no dashboard at all
        assert kwargs["include_dashboard"] is False
        assert kwargs["_system_config"] == {"prestart_worker_first_driver": False}
        assert os.environ["RAY_AUTH_MODE"] == "disabled"
    assert kwargs.get("dashboard_host", "127.0.0.1") == "127.0.0.1"
    assert "0.0.0.0" not in repr(kwargs)
    # The secrets stay in the driver's environment; none is copied into the runtime env.
    assert set(kwargs["runtime_env"]["env_vars"]) <= {
        "RLMR_CACHE",
        "TORCH_EXTENSIONS_DIR",
        "HF_HOME",
        "RAY_AUTH_MODE",
        "HF_HUB_OFFLINE",
        "TOKENIZERS_PARALLELISM",
    }
    assert_no_secret(repr(kwargs), "ray.init's arguments")


def test_submit_sh_defaults_to_the_dashboard_on_127_0_0_1():
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    out = subprocess.run(
        [str(REPO / "cluster" / "submit.sh"), "configs/tiny.yaml", "--dry-run"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "ray job submit --address http://127.0.0.1:8265 " in out.stdout
    assert "0.0.0.0" not in out.stdout + out.stderr


def test_no_source_or_manifest_binds_to_all_interfaces():
    host = re.compile(r"""dashboard[-_]host['"]?\s*[:= ]\s*['"]?([^'"\s,)}]+)""")
    offenders, hosts = [], []
    for root in ("rlmr", "actors", "cluster", "configs"):
        for path in (REPO / root).rglob("*"):
            if path.is_file() and path.suffix in {".py", ".sh", ".yaml", ".yml", ".toml", ""}:
                text = path.read_text(encoding="utf-8", errors="replace")
                name = str(path.relative_to(REPO))
                if "0.0.0.0" in text:
                    offenders.append(name)
                hosts += [(name, h) for h in host.findall(text)]
    assert offenders == []
    assert hosts and all(h == "127.0.0.1" for _, h in hosts), hosts

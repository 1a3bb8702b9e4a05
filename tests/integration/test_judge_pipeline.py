"""The RLCS pipeline end to end on CPU, through the command line and Ray, on the tiny model:

    rlmr genrm build-pairs  (Arena-Hard creative pairs; the tiny model writes the weak side)
    rlmr genrm distill      (a teacher on a local HTTP endpoint: it prefers the longer response)
    rlmr sft                (the judge learns the kept chains; its NLL must fall)
    rlmr train, task: judge (GRPO from the SFT policy; its verdicts must earn real advantages)
    rlmr train              (RLMR policy training with the trained judge as its writing reward)

and the judge is evaluated on held-out pairs at each stage.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class _LongerIsBetter(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's API)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        text = body["messages"][-1]["content"]
        blocks = text.split("<<<RESPONSE ")[1:]
        lengths = [len(b.split(">>>", 1)[1].split("<<<END OF RESPONSE")[0]) for b in blocks]
        labels = [b.split(">>>", 1)[0] for b in blocks]
        best = labels[0] if lengths[0] >= lengths[1] else labels[1]
        payload = json.dumps({"choices": [{"message": {"content": f"Fuller.\nVerdict: {best}"}}]})
        self.send_response(200)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload.encode())

    def log_message(self, *args):
        pass


def _rlmr(repo, *args, timeout=900):
    env = dict(os.environ, RAY_AUTH_MODE="disabled", PYTHONUNBUFFERED="1")
    proc = subprocess.run(
        [sys.executable, "-m", "rlmr.cli", *args],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return proc


def _metrics(run_dir):
    return [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_pairs_distill_sft_then_judge_grpo(repo, tmp_path):
    data = tmp_path / "genrm"
    _rlmr(
        repo,
        "genrm",
        "build-pairs",
        "--out",
        str(data),
        "--weak",
        "tiny",
        "--limit",
        "10",
        "--max-new-tokens",
        "24",
    )
    server = HTTPServer(("127.0.0.1", 0), _LongerIsBetter)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        _rlmr(
            repo,
            "genrm",
            "distill",
            "--pairs",
            str(data / "train.jsonl"),
            "--model",
            "tiny",
            "--max-judge-len",
            "1000",
            "--teacher",
            f"http://127.0.0.1:{server.server_address[1]}",
            "--out",
            str(data / "chains.jsonl"),
            "--no-progress",
        )
    finally:
        server.shutdown()
    chains = [json.loads(x) for x in (data / "chains.jsonl").read_text().splitlines()]
    assert len(chains) >= 8 and all(c["completion"].strip() in ("A", "B") for c in chains)

    common = [
        "--set",
        f"logging.output_dir={tmp_path / 'runs'}",
        "--set",
        f"data.train={data / 'train.jsonl'}",
        "--set",
        f"data.eval={data / 'heldout.jsonl'}",
    ]
    _rlmr(
        repo,
        "sft",
        "configs/genrm-tiny.yaml",
        *common,
        "--set",
        f"judge.sft.data={data / 'chains.jsonl'}",
        "--set",
        "judge.sft.epochs=12",
        "--set",
        "trainer.steps=100",  # the epochs bound the SFT steps, not the GRPO config's 2
        "--set",
        "learner.lr=3e-3",
        "--set",
        "trainer.eval_every=0",
    )
    sft_run = tmp_path / "runs" / "genrm-tiny-sft"
    sft = _metrics(sft_run)
    steps = [m for m in sft if m["step"] > 0]
    assert len(steps) >= 3 and steps[-1]["sft/nll"] < steps[0]["sft/nll"]
    assert sft[-1]["eval/verdict_mass"] > 0.5 > sft[0]["eval/verdict_mass"]  # it learnt to answer

    _rlmr(
        repo,
        "train",
        "configs/genrm-tiny.yaml",
        *common,
        "--set",
        f"model.source={{type: local, path: {sft_run}}}",  # the run stands for its newest policy
        "--set",
        "trainer.steps=3",
        "--set",
        "rollout.n=8",
        "--set",
        "learner.micro_batch_size=8",
    )
    grpo = _metrics(tmp_path / "runs" / "genrm-tiny")
    assert [m["step"] for m in grpo] == [0, 1, 2, 3]
    trained = grpo[1:]
    assert all(0.0 <= m["judge/agreement"] <= 1.0 for m in trained)
    assert max(m["judge/verdict_rate"] for m in trained) > 0.5  # SFT taught it to answer a label
    assert any(m["adv_std"] > 0 and m["grad_norm"] > 0 for m in trained)
    assert {"eval/agreement", "eval/position_consistency", "eval/ece"} <= set(grpo[-1])

    # RLMR with the judge just trained: `reward.writing.model` names its run directory
    _rlmr(
        repo,
        "train",
        "configs/tiny.yaml",
        "--set",
        f"logging.output_dir={tmp_path / 'runs'}",
        "--set",
        f"reward.writing.model={{type: local, path: {tmp_path / 'runs' / 'genrm-tiny'}}}",
        "--set",
        "trainer.steps=1",
    )
    policy = _metrics(tmp_path / "runs" / "tiny")
    assert policy[-1]["step"] == 1 and 0.0 <= policy[-1]["writing_mean"] <= 1.0
    saved = (tmp_path / "runs" / "tiny" / "config.yaml").read_text()
    assert str(tmp_path / "runs" / "genrm-tiny") in saved

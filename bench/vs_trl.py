"""Benchmark: seconds per GRPO step, `rlmr train` against TRL's `GRPOTrainer`, on the same work.

    python bench/vs_trl.py                                 # the issue's shape: 4 x 4 x 64
    python bench/vs_trl.py --prompts 2 --n 8 --tokens 96   # the main job's shape
    python bench/vs_trl.py --rounds 2 --steps 4 --set rollout.engine.dtype=bfloat16
    python bench/vs_trl.py --variant colocated=cluster.colocate=true   # two rlmr layouts + TRL

The same work on both sides: SmolLM2-135M-Instruct (the embedded default
model, converted once by rlmr into a Hugging Face folder that both load),
`--prompts` prompts x `--n` samples x `--tokens` new tokens at temperature 1,
KL to a reference model with beta 0.04 (k3, in the loss), learning rate 1e-6
constant, AdamW without weight decay, token-mean loss clipped at
[0.8, 1.28], micro-batches of `--micro` samples, fp32, one optimizer step
per batch, and one reward: 1 when the response has at most 40 words, else 0
(rlmr's verifier rule `creative:word_count` and the same rule written for
TRL). TRL runs in its own virtualenv, created here on first use
(`.cache/bench/trl-venv`: trl, its transformers/accelerate/datasets, torch
pinned by constraints-cpu.txt); it is never a dependency of the project.

The two alternate, `--rounds` times each; a round is one fresh process (rlmr:
`rlmr train` starting its own local Ray; TRL: one trainer) running `--steps`
steps. Step 1 of every round is left out (first-call warm-up on both sides);
the figure is the median of the other steps over all rounds. rlmr's step time
is its `time/step_s` (rollout through weight sync) with the phases beside it;
TRL's is the time between its `on_step_begin` and `on_step_end` callbacks
(generation, reference, loss, optimizer). Peak memory: the largest sum over
the whole process tree (rlmr: driver, Ray and every actor) of resident memory
(RSS, sampled every 0.2 s) and of proportional memory (PSS, shared library
pages split among the processes that map them, every 2 s: reading it costs
CPU), with the PSS per process at its peak and the sampler's CPU seconds.
`--set KEY=VALUE` passes rlmr overrides (levers: engine dtype, micro-batch,
...; `env:NAME=VALUE` sets an environment variable of the run instead).
`--variant NAME=KEY=VALUE` (repeatable; one NAME may take several) adds an
rlmr run with those overrides on top, alternating with the others in every
round: its figures go under `variants`, each with its own ratio to TRL. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VENV = REPO / ".cache" / "bench" / "trl-venv"
TRL_VERSION = "1.16.0"
WORD_LIMIT = 40
TOPICS = [
    "a lighthouse keeper's last night",
    "a city where it never stops raining",
    "two rivals stuck in a lift",
    "a letter found inside a library book",
    "the first snow of the year",
    "a robot learning to garden",
    "a train that never arrives",
    "a market at dawn",
]


def prompt_rows(count: int) -> list[dict]:
    return [
        {
            "id": f"bench-{i}",
            "prompt": f"Write a short story about {TOPICS[i % len(TOPICS)]}. "
            f"Use at most {WORD_LIMIT} words.",
            "constraints": [{"type": "creative:word_count", "max": WORD_LIMIT}],
        }
        for i in range(count)
    ]


class PeakRSS:
    """The largest total memory of a process and all its descendants, sampled.

    Two sums: resident memory (RSS, what `top` shows; pages of a shared
    library mapped by several processes count in each), every `every`
    seconds, and proportional memory (PSS: each shared page split among the
    processes mapping it, so the sum is what the tree really holds). For a
    single process the two are close; for rlmr's tree of Ray processes, each
    loading libtorch, RSS counts the libraries once per process. Reading PSS
    walks every process's page tables (about 20 ms per GiB resident, taken from
    the 2 cores the runs share, and in proportion to the memory measured, so
    more from rlmr's tree than from TRL's one process): it is read only when
    the tree's RSS reaches a new high, at most every `pss_every` seconds (a high
    met meanwhile is read when the wait ends), which is where its peak lies
    (the shared libraries do not change). The process list is refreshed every
    `pss_every` seconds too. The per-process breakdown at the PSS peak is kept
    (`by_process`, MiB), and the sampler's own CPU seconds.
    """

    def __init__(self, pid: int, every: float = 0.2, pss_every: float = 2.0):
        import psutil

        self.proc, self.every, self.pss_every = psutil.Process(pid), every, pss_every
        self.peak_rss = self.peak_pss = 0
        self.by_process: dict[str, int] = {}
        self.cpu_s = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def _label(p) -> str:
        cmd = p.cmdline()
        name = cmd[0] if cmd else p.name()
        if name.startswith("ray::"):
            return name.split(".")[0]  # ray::RolloutWorker.generate -> ray::RolloutWorker
        parts = [Path(c).name for c in cmd[:3] if not c.startswith("-")]
        return " ".join(parts)[:60] or p.name()

    def _run(self):
        import psutil

        next_pss = next_list = 0.0
        procs, pending = [], False
        while not self._stop.is_set():
            start = time.thread_time()
            now = time.monotonic()
            if now >= next_list:
                try:
                    procs = [self.proc, *self.proc.children(recursive=True)]
                except psutil.Error:
                    return
                next_list = now + self.pss_every
            rss = 0
            for p in procs:
                try:
                    rss += p.memory_info().rss
                except psutil.Error:
                    continue
            if rss > self.peak_rss:
                self.peak_rss, pending = rss, True
            if pending and now >= next_pss:  # a high met during the wait is read at its end
                next_pss, pending = now + self.pss_every, False
                self._sample_pss(procs)
            self.cpu_s += time.thread_time() - start
            time.sleep(self.every)

    def _sample_pss(self, procs) -> None:
        import psutil

        pss, sample = 0, {}
        for p in procs:
            try:
                value = p.memory_full_info().pss
                sample[f"{self._label(p)} [{p.pid}]"] = value
            except psutil.Error:
                continue
            pss += value
        if pss > self.peak_pss:
            self.peak_pss, self.by_process = pss, sample

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join()
        return {
            "rss_gib": self.peak_rss / 2**30,
            "pss_gib": self.peak_pss / 2**30,
            "by_process_mib": {
                k: round(v / 2**20)
                for k, v in sorted(self.by_process.items(), key=lambda kv: -kv[1])
            },
            "sampler_cpu_s": round(self.cpu_s, 1),
        }


def run_measured(cmd: list[str], env: dict, log: Path) -> tuple[float, dict]:
    """Run `cmd`, return (wall seconds, peak memory of its process tree); output to `log`."""
    t0 = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
        peak = PeakRSS(proc.pid)
        code = proc.wait()
        memory = peak.stop()
    if code != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise SystemExit(f"{' '.join(cmd[:4])} ... failed with exit code {code}:\n{tail}")
    return time.perf_counter() - t0, memory


def model_dir() -> Path:
    sys.path.insert(0, str(REPO))
    from rlmr.config import load_config
    from rlmr.engine.loading import resolve_model_dir

    return Path(resolve_model_dir(load_config(REPO / "configs" / "smollm2-cpu.yaml").model.source))


def ensure_trl_venv() -> Path:
    python = VENV / "bin" / "python"
    probe = [str(python), "-c", "import trl; print(trl.__version__)"]
    if python.exists() and subprocess.run(probe, capture_output=True, text=True).stdout.strip() == (
        TRL_VERSION
    ):
        return python
    print(f"bench: creating {VENV} with trl=={TRL_VERSION} (once)", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "-c", str(REPO / "constraints-cpu.txt")]
        + [f"trl=={TRL_VERSION}"],
        check=True,
    )
    return python


def rlmr_round(args, work: Path, data: Path, r: int, name: str = "", extra=()) -> dict:
    tag = f"rlmr-{name}-{r}" if name else f"rlmr-{r}"
    out = work / tag
    sets = [
        f"data.train={data}",
        "data.eval=null",
        f"rollout.n={args.n}",
        f"rollout.prompts_per_step={args.prompts}",
        f"rollout.max_new_tokens={args.tokens}",
        "reward.writing={type: none}",
        "reward.strategy=verifier_only",
        "algo.kl.beta=0.04",
        "algo.kl.estimator=k3",
        "algo.kl.in_loss=true",
        "cluster.reference={replicas: 1, cpus: 0.5}",
        "cluster.genrm.replicas=0",
        "learner.lr=1e-6",
        f"learner.micro_batch_size={args.micro}",
        f"trainer.steps={args.steps}",
        "trainer.max_wall_minutes=null",
        "trainer.eval_every=0",
        "trainer.eval_at_start=false",
        f"checkpoint.every={10**6}",
        "checkpoint.save_optimizer=false",
        f"logging.output_dir={out}",
        "logging.run_name=bench",
        "logging.progress_bar=false",
        "logging.tensorboard=false",
        *args.set,
        *extra,
    ]
    cmd = [sys.executable, "-m", "rlmr.cli", "train", "configs/smollm2-cpu.yaml"]
    env = dict(os.environ, RAY_AUTH_MODE="disabled", PYTHONUNBUFFERED="1")
    for s in sets:
        if s.startswith("env:"):  # an environment variable for this run, not a config key
            key, _, value = s[4:].partition("=")
            env[key] = value
        else:
            cmd += ["--set", s]
    wall, memory = run_measured(cmd, env, work / f"{tag}.log")
    rows = [json.loads(x) for x in (out / "bench" / "metrics.jsonl").read_text().splitlines()]
    steps = [m for m in rows if m.get("step", 0) >= 1]
    return {"wall_s": wall, "memory": memory, "steps": steps}


TRL_SCRIPT = r"""
import json, re, sys, time
import torch
from datasets import Dataset
from transformers import TrainerCallback
from trl import GRPOConfig, GRPOTrainer

a = json.loads(sys.argv[1])
rows = [json.loads(x) for x in open(a["data"])]
data = Dataset.from_list([{"prompt": [{"role": "user", "content": r["prompt"]}]} for r in rows])
WORD = re.compile(r"[^\W_]", re.UNICODE)

def word_limit(completions, **kw):
    # rlmr's creative:word_count: whitespace-separated tokens that hold a letter or digit
    out = []
    for c in completions:
        text = c[0]["content"] if isinstance(c, list) else c
        out.append(1.0 if sum(1 for t in text.split() if WORD.search(t)) <= a["limit"] else 0.0)
    return out

class Timer(TrainerCallback):
    def __init__(self):
        self.times = []
    def on_step_begin(self, args, state, control, **kw):
        self.t0 = time.perf_counter()
    def on_step_end(self, args, state, control, **kw):
        self.times.append(time.perf_counter() - self.t0)

accum = a["prompts"] * a["n"] // a["micro"]
cfg = GRPOConfig(
    output_dir=a["out"], use_cpu=True, bf16=a["bf16"], fp16=False, seed=0,
    per_device_train_batch_size=a["micro"], gradient_accumulation_steps=accum,
    num_generations=a["n"], max_completion_length=a["tokens"], temperature=1.0,
    beta=0.04, epsilon=0.2, epsilon_high=0.28, loss_type="dapo", scale_rewards="group",
    num_iterations=1, learning_rate=1e-6, lr_scheduler_type="constant", weight_decay=0.0,
    max_steps=a["steps"], logging_steps=1, save_strategy="no", report_to=[],
    dataloader_num_workers=0, disable_dropout=True,
    model_init_kwargs={"dtype": torch.float32},
)
timer = Timer()
trainer = GRPOTrainer(model=a["model"], reward_funcs=word_limit, args=cfg, train_dataset=data,
                      callbacks=[timer])
trainer.train()
print("BENCH_JSON " + json.dumps({"step_s": timer.times,
      "log": [h for h in trainer.state.log_history if "loss" in h]}))
"""


def trl_round(
    args, work: Path, data: Path, model: Path, python: Path, r: int, bf16: bool = False
) -> dict:
    """One TRL round; `bf16`: TRL's own mixed precision (`GRPOConfig(bf16=True)`: fp32 weights,
    bf16 autocast), the setting a TRL user picks on hardware with bf16 arithmetic."""
    script = work / "trl_grpo.py"
    script.write_text(TRL_SCRIPT)
    name = f"trl-bf16-{r}" if bf16 else f"trl-{r}"
    spec = dict(
        data=str(data),
        model=str(model),
        out=str(work / name),
        bf16=bf16,
        prompts=args.prompts,
        n=args.n,
        tokens=args.tokens,
        micro=args.micro,
        steps=args.steps,
        limit=WORD_LIMIT,
    )
    env = dict(os.environ, PYTHONUNBUFFERED="1", TOKENIZERS_PARALLELISM="false")
    env.pop("PYTHONPATH", None)
    log = work / f"{name}.log"
    wall, memory = run_measured([str(python), str(script), json.dumps(spec)], env, log)
    line = next(x for x in log.read_text().splitlines() if x.startswith("BENCH_JSON "))
    result = json.loads(line[len("BENCH_JSON ") :])
    return {"wall_s": wall, "memory": memory, **result}


def peak_memory(runs: list[dict]) -> dict:
    """The largest peaks over rounds, and the breakdown of the round with the largest PSS."""
    worst = max(runs, key=lambda r: r["memory"]["pss_gib"])["memory"]
    return {
        "peak_rss_gib": round(max(r["memory"]["rss_gib"] for r in runs), 2),
        "peak_pss_gib": round(max(r["memory"]["pss_gib"] for r in runs), 2),
        "pss_by_process_mib": worst["by_process_mib"],
        "sampler_cpu_s": [r["memory"]["sampler_cpu_s"] for r in runs],
    }


def rlmr_figures(args, runs: list[dict]) -> dict:
    """Median step and phases over every round's steps but the first, tokens/s, peak memory."""
    steps = [m for run in runs for m in run["steps"] if m["step"] > 1]
    phases = sorted({k for m in steps for k in m if k.startswith("time/")})
    return {
        "step_s": median([m["time/step_s"] for m in steps]),
        "phases_s": {k[5:-2]: median([m[k] for m in steps if k in m]) for k in phases},
        "tokens_per_s": median(
            [m["response_len_mean"] * args.prompts * args.n / m["time/step_s"] for m in steps]
        ),
        # Unrounded: a few 1e-5 nats per token is the healthy figure.
        "logprob_gap_rollout": statistics.median([m["logprob_gap_rollout"] for m in steps]),
        **peak_memory(runs),
        "round_wall_s": [round(r["wall_s"], 1) for r in runs],
    }


def trl_figures(args, runs: list[dict]) -> dict:
    """Median step over every round's steps but the first, tokens/s, peak memory."""
    times = [t for run in runs for t in run["step_s"][1:]]
    lengths = [h.get("completions/mean_length") for run in runs for h in run["log"][1:]]
    return {
        "version": TRL_VERSION,
        "step_s": median(times),
        "tokens_per_s": median(
            [n * args.prompts * args.n / t for n, t in zip(lengths, times) if n]
        ),
        **peak_memory(runs),
        "round_wall_s": [round(r["wall_s"], 1) for r in runs],
    }


def cpu_description() -> str:
    """The CPU's model name and whether it has bf16 arithmetic (AMX, AVX-512 BF16): the
    figures of the two kinds of machine do not compare."""
    from rlmr.engine.cpu_linear import cpu_model

    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return cpu_model()
    flags = set(next((x for x in info.splitlines() if x.startswith("flags")), "").split())
    bf16 = [f for f in ("amx_bf16", "avx512_bf16") if f in flags]
    return f"{cpu_model()}, {' '.join(bf16) if bf16 else 'no bf16 arithmetic'}"


def median(values):
    return round(statistics.median(values), 3) if values else None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--prompts", type=int, default=4)
    p.add_argument("--n", type=int, default=4)
    p.add_argument("--tokens", type=int, default=64)
    p.add_argument("--micro", type=int, default=4, help="samples per micro-batch, both sides")
    p.add_argument("--steps", type=int, default=4, help="steps per round (the first is dropped)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--set", action="append", default=[], help="rlmr override, repeatable")
    p.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=KEY=VALUE",
        help="another rlmr run with this override on top (repeatable, a NAME may repeat)",
    )
    p.add_argument(
        "--trl-bf16",
        action="store_true",
        help="also run TRL with bf16=True (its mixed precision) in every round",
    )
    p.add_argument("--only", choices=["rlmr", "trl"], help="measure one side")
    p.add_argument("--work", type=Path, help="keep logs and runs here (default: a temp dir)")
    args = p.parse_args(argv)
    variants: dict[str, list[str]] = {}
    for spec in args.variant:
        name, sep, override = spec.partition("=")
        if not sep or not name or "=" not in override:
            p.error(f"--variant: expected NAME=KEY=VALUE, got {spec!r}")
        variants.setdefault(name, []).append(override)

    model = model_dir()
    python = ensure_trl_venv() if args.only != "rlmr" else None
    work = args.work or Path(tempfile.mkdtemp(prefix="rlmr-vs-trl-"))
    work.mkdir(parents=True, exist_ok=True)
    data = work / "prompts.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in prompt_rows(64)))
    rlmr_runs, trl_runs, trl_bf16_runs = [], [], []
    variant_runs: dict[str, list[dict]] = {name: [] for name in variants}
    for r in range(args.rounds):
        if args.only != "trl":
            rlmr_runs.append(rlmr_round(args, work, data, r))
            print(f"bench: rlmr round {r + 1}: {rlmr_runs[-1]['wall_s']:.0f} s", file=sys.stderr)
            for name, overrides in variants.items():
                variant_runs[name].append(rlmr_round(args, work, data, r, name, overrides))
                wall = variant_runs[name][-1]["wall_s"]
                print(f"bench: rlmr {name} round {r + 1}: {wall:.0f} s", file=sys.stderr)
        if args.only != "rlmr":
            trl_runs.append(trl_round(args, work, data, model, python, r))
            print(f"bench: trl round {r + 1}: {trl_runs[-1]['wall_s']:.0f} s", file=sys.stderr)
            if args.trl_bf16:
                trl_bf16_runs.append(trl_round(args, work, data, model, python, r, bf16=True))
                wall = trl_bf16_runs[-1]["wall_s"]
                print(f"bench: trl bf16 round {r + 1}: {wall:.0f} s", file=sys.stderr)

    result = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {cpu_description()}",
        "work": {
            "model": "SmolLM2-135M-Instruct",
            "prompts": args.prompts,
            "samples_per_prompt": args.n,
            "max_new_tokens": args.tokens,
            "micro_batch": args.micro,
            "kl_beta": 0.04,
            "lr": 1e-6,
            "dtype": "float32",
            "rlmr_overrides": args.set,
        },
        "rounds": args.rounds,
        "steps_per_round": args.steps,
        "logs": str(work),
    }
    if rlmr_runs:
        result["rlmr"] = rlmr_figures(args, rlmr_runs)
    if variant_runs:
        result["variants"] = {
            name: {"overrides": variants[name], **rlmr_figures(args, runs)}
            for name, runs in variant_runs.items()
        }
    if trl_runs:
        result["trl"] = trl_figures(args, trl_runs)
    if trl_bf16_runs:
        result["trl_bf16"] = trl_figures(args, trl_bf16_runs)
    for key, suffix in (("trl", ""), ("trl_bf16", "_bf16")):
        if key not in result:
            continue
        trl_step = result[key]["step_s"]
        if rlmr_runs:
            result[f"ratio_rlmr_over_trl{suffix}"] = round(result["rlmr"]["step_s"] / trl_step, 3)
        for figures in result.get("variants", {}).values():
            figures[f"ratio_over_trl{suffix}"] = round(figures["step_s"] / trl_step, 3)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

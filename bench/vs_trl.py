"""Benchmark: seconds per GRPO step, `rlmr train` against TRL's `GRPOTrainer`, on the same work.

    python bench/vs_trl.py                                 # the issue's shape: 4 x 4 x 64
    python bench/vs_trl.py --prompts 2 --n 8 --tokens 96   # the main job's shape
    python bench/vs_trl.py --rounds 2 --steps 4 --set rollout.engine.dtype=bfloat16
    python bench/vs_trl.py --variant colocated=cluster.colocate=true   # two rlmr layouts + TRL
    python bench/vs_trl.py --trl-variant keep=gradient_checkpointing=false   # two TRL settings

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
round: its figures go under `variants`, each with its own ratio to TRL.
`--trl-variant NAME=FIELD=VALUE` does the same for TRL with a `GRPOConfig`
field (`bf16=true`, or `gradient_checkpointing=false`: TRL 1.16's GRPO
recomputes activations in the backward by default, rlmr by default keeps
them); its figures go under `trl_NAME`, the ratios under
`ratio_rlmr_over_trl_NAME`. Each ratio is also taken round by round (`..._rounds`: each rlmr
round's median step over the TRL round of the same index, and their median), so a slow spell of
a shared machine weighs on both sides of a round. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
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

import yaml

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


TRL_SCRIPT = Path(__file__).with_name("trl_grpo.py")  # run in the TRL virtualenv


def trl_round(
    args, work: Path, data: Path, model: Path, python: Path, r: int, name="", config=None
) -> dict:
    """One TRL round; `config`: `GRPOConfig` fields over the work's (`{"bf16": True}`: TRL's own
    mixed precision, fp32 weights and bf16 autocast; `{"gradient_checkpointing": False}`: keep
    activations instead of TRL's default of recomputing them in the backward)."""
    name = f"trl-{name}-{r}" if name else f"trl-{r}"
    spec = dict(
        data=str(data),
        model=str(model),
        out=str(work / name),
        config=config or {},
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
    wall, memory = run_measured([str(python), str(TRL_SCRIPT), json.dumps(spec)], env, log)
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


def measured_steps(run: dict) -> list[dict]:
    """An rlmr round's steps but the first (first-call warm-up)."""
    return [m for m in run["steps"] if m["step"] > 1]


def rlmr_figures(args, runs: list[dict]) -> dict:
    """Median step and phases over every round's steps but the first, tokens/s, peak memory."""
    steps = [m for run in runs for m in measured_steps(run)]
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
        "gradient_checkpointing": runs[0].get("gradient_checkpointing"),
    }


def round_ratios(rlmr_runs: list[dict], trl_runs: list[dict]) -> dict:
    """rlmr / TRL round by round (each round's median step, the first step left out), and their
    median: the two sides of a round run minutes apart, so a slow spell of a shared machine
    weighs on both instead of on whichever side it fell in."""
    ratios = [
        median([m["time/step_s"] for m in measured_steps(a)]) / median(b["step_s"][1:])
        for a, b in zip(rlmr_runs, trl_runs)
    ]
    return {"by_round": [round(r, 3) for r in ratios], "median": round(median(ratios), 3)}


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
    # What libraries print (DeepSpeed's logger writes to the stdout it found on import) goes to
    # stderr: stdout is the JSON's alone.
    with contextlib.redirect_stdout(sys.stderr):
        result = measure(argv)
    print(json.dumps(result, indent=2))
    return 0


def measure(argv=None) -> dict:
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
        "--trl-variant",
        action="append",
        default=[],
        metavar="NAME=FIELD=VALUE",
        help="another TRL run with this GRPOConfig field (a YAML value) on top (repeatable)",
    )
    p.add_argument("--trl-bf16", action="store_true", help="--trl-variant bf16=bf16=true")
    p.add_argument("--only", choices=["rlmr", "trl"], help="measure one side")
    p.add_argument("--work", type=Path, help="keep logs and runs here (default: a temp dir)")
    args = p.parse_args(argv)
    variants: dict[str, list[str]] = {}
    for spec in args.variant:
        name, sep, override = spec.partition("=")
        if not sep or not name or "=" not in override:
            p.error(f"--variant: expected NAME=KEY=VALUE, got {spec!r}")
        variants.setdefault(name, []).append(override)
    trl_variants: dict[str, dict] = {}
    for spec in args.trl_variant + (["bf16=bf16=true"] if args.trl_bf16 else []):
        name, _, override = spec.partition("=")
        field, sep, value = override.partition("=")
        if not sep or not name or not field:
            p.error(f"--trl-variant: expected NAME=FIELD=VALUE, got {spec!r}")
        trl_variants.setdefault(name, {})[field] = yaml.safe_load(value)

    model = model_dir()
    python = ensure_trl_venv() if args.only != "rlmr" else None
    work = args.work or Path(tempfile.mkdtemp(prefix="rlmr-vs-trl-"))
    work.mkdir(parents=True, exist_ok=True)
    data = work / "prompts.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in prompt_rows(64)))
    rlmr_runs, trl_runs = [], []
    trl_variant_runs: dict[str, list[dict]] = {name: [] for name in trl_variants}
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
            for name, config in trl_variants.items():
                runs = trl_variant_runs[name]
                runs.append(trl_round(args, work, data, model, python, r, name, config))
                wall = runs[-1]["wall_s"]
                print(f"bench: trl {name} round {r + 1}: {wall:.0f} s", file=sys.stderr)

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
    for name, runs in trl_variant_runs.items():
        result[f"trl_{name}"] = {"config": trl_variants[name], **trl_figures(args, runs)}
    for suffix in [""] + [f"_{name}" for name in trl_variants]:
        if f"trl{suffix}" not in result:
            continue
        trl_step = result[f"trl{suffix}"]["step_s"]
        trl = trl_runs if not suffix else trl_variant_runs[suffix[1:]]
        if rlmr_runs:
            result[f"ratio_rlmr_over_trl{suffix}"] = round(result["rlmr"]["step_s"] / trl_step, 3)
            result[f"ratio_rlmr_over_trl{suffix}_rounds"] = round_ratios(rlmr_runs, trl)
        for name, figures in result.get("variants", {}).items():
            figures[f"ratio_over_trl{suffix}"] = round(figures["step_s"] / trl_step, 3)
            figures[f"ratio_over_trl{suffix}_rounds"] = round_ratios(variant_runs[name], trl)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
